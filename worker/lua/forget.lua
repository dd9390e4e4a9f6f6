-- Removes outbox entries whose records are committed: no replay can need them any more.
-- Many sessions per call (one HDEL per session cost redis-py a command and a reply each).
-- KEYS: outbox HASHes (on a cluster, one call's keys share a hash tag).
-- ARGV: per key, n, then its n fields. Returns how many entries were removed.
local removed, a = 0, 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  removed = removed + redis.call('HDEL', KEYS[k], unpack(ARGV, a + 1, a + n))
  a = a + 1 + n
end
return removed
