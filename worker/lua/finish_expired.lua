-- Records that a claimed expiry was announced: the session becomes a tombstone.
-- KEYS: live, record, index, then the older layout's meta and archive (see record.lua).
-- ARGV: session id, claimed version, tombstone expire-at (ms).
-- Does nothing if the session changed since the claim (re-created under the same id).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local rec = read_record(KEYS[2], KEYS[4], KEYS[5])
if not rec or rec.v ~= tonumber(ARGV[2]) then
  return 0
end
rec.v, rec.st, rec.x, rec.copy = rec.v + 1, 'expired', '', ''
write_record(KEYS[2], KEYS[4], KEYS[5], rec, ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
