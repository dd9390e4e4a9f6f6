-- Records that claimed expiries were announced: each session becomes a tombstone.
-- Many sessions per call (a call per session cost redis-py a command and a reply each).
-- KEYS: 5 per session: live, record, index, then the older layout's meta and archive (see
--   record.lua). On a cluster, one call's sessions share a hash tag.
-- ARGV: tombstone expire-at (ms), then per session: its id and the claimed version.
-- A session that changed since the claim (re-created under the same id) is left alone.
-- Returns how many sessions were still as claimed.
local finished, a = 0, 2
for k = 1, #KEYS, 5 do
  if redis.call('EXISTS', KEYS[k]) == 0 then
    local rec = read_record(KEYS[k + 1], KEYS[k + 3], KEYS[k + 4])
    if rec and rec.v == tonumber(ARGV[a + 1]) then
      rec.v, rec.st, rec.x, rec.copy, rec.t = rec.v + 1, 'expired', '', '', ''
      write_record(KEYS[k + 1], KEYS[k + 3], KEYS[k + 4], rec, ARGV[1])
      redis.call('ZREM', KEYS[k + 2], ARGV[a])
      finished = finished + 1
    end
  end
  a = a + 2
end
return finished
