-- Records that a claimed expiry was announced: the session becomes a tombstone.
-- KEYS: live, meta, index, archive. ARGV: session id, claimed version, tombstone expire-at (ms).
-- Does nothing if the session changed since the claim (re-created under the same id).
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HGET', KEYS[2], 'v') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[2], 'v', tonumber(ARGV[2]) + 1, 'st', 'expired')
redis.call('HDEL', KEYS[2], 'a', 'x')
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
