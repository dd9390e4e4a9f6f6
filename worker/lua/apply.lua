-- Applies one session's decided operations of a batch, in order, each guarded by the state it
-- was decided on (version and whether the live record exists). Stops at the first mismatch so a
-- stale decision never lands. An operation whose record already has an outbox entry was applied
-- before (a replay after a crash): its original event is returned, nothing changes, and the
-- run stops there too, since the operations after it were decided on a guess of its outcome.
--
-- KEYS: live, meta, outbox, index.
-- ARGV[1]: outbox TTL (ms); ARGV[2]: session id (index member); then 12 per operation:
--   kind, outbox field, expected version, expected live (0/1), event,
--   snapshot, expires at (ms), new version, owner, status, mark field, meta expire-at (ms)
-- Returns one entry per operation run: 1 applied, {2, event} replayed, {0, version, live} stale.
-- kind: 'put' (create or update), 'delete', or 'keep'.
local live, meta, outbox, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outbox_ttl, member = ARGV[1], ARGV[2]
local results = {}
for i = 3, #ARGV, 12 do
  local kind, field = ARGV[i], ARGV[i + 1]
  local prior = redis.call('HGET', outbox, field)
  if prior then
    results[#results + 1] = {2, prior}
    return results
  else
    local version = tonumber(redis.call('HGET', meta, 'v') or '0')
    local has_live = redis.call('EXISTS', live)
    if version ~= tonumber(ARGV[i + 2]) or has_live ~= tonumber(ARGV[i + 3]) then
      results[#results + 1] = {0, version, has_live}
      return results
    end
    local snapshot, expires_ms, new_version = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
    if kind == 'put' then
      redis.call('SET', live, snapshot, 'PXAT', expires_ms)
      redis.call('HSET', meta, 'v', new_version, 'o', ARGV[i + 8], 'st', ARGV[i + 9],
        'x', expires_ms, 'a', snapshot, ARGV[i + 10], '1')
      redis.call('PEXPIREAT', meta, ARGV[i + 11])
      redis.call('ZADD', index, expires_ms, member)
    elseif kind == 'delete' then
      redis.call('DEL', live)
      redis.call('HDEL', meta, 'a', 'x')
      redis.call('HSET', meta, 'v', new_version, 'st', 'deleted', ARGV[i + 10], '1')
      redis.call('PEXPIREAT', meta, ARGV[i + 11])
      redis.call('ZREM', index, member)
    end
    -- kind 'keep' changes no state (a rejection, a no-op): only its answer is kept, for replays.
    redis.call('HSET', outbox, field, ARGV[i + 4])
    redis.call('PEXPIRE', outbox, outbox_ttl)
    results[#results + 1] = 1
  end
end
return results
