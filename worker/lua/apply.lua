-- Applies one session's decided operations of a batch, in order, each guarded by the state it
-- was decided on (version and whether the live record exists). Stops at the first mismatch so a
-- stale decision never lands. An operation whose record already has an outbox entry was applied
-- before (a replay after a crash): its original event is returned, nothing changes, and the
-- run stops there too, since the operations after it were decided on a guess of its outcome.
--
-- KEYS: live, meta, outbox, index, archive (a copy of live that outlasts it, for the expiry).
-- ARGV[1]: outbox TTL (ms); ARGV[2]: session id (index member); then 3 per operation:
--   the small fields joined by \x1f (kind, outbox field, expected version, expected live (0/1),
--   expires at (ms), new version, owner, status, mark field, meta expire-at (ms)), the event,
--   the stored (compressed) snapshot, written to live and archive alike.
-- Returns one entry per operation run: 1 applied, {2, event} replayed, {0, version, live} stale.
-- kind: 'put' (create or update), 'delete', or 'keep'.
local live, meta, outbox, index, archive = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local outbox_ttl, member = ARGV[1], ARGV[2]
local function fields(head)
  local out = {}
  for part in (head .. '\31'):gmatch('([^\31]*)\31') do
    out[#out + 1] = part
  end
  return out
end
local results = {}
for i = 3, #ARGV, 3 do
  local f = fields(ARGV[i])
  local kind, field, event, snapshot = f[1], f[2], ARGV[i + 1], ARGV[i + 2]
  local prior = redis.call('HGET', outbox, field)
  if prior then
    results[#results + 1] = {2, prior}
    return results
  else
    local version = tonumber(redis.call('HGET', meta, 'v') or '0')
    local has_live = redis.call('EXISTS', live)
    if version ~= tonumber(f[3]) or has_live ~= tonumber(f[4]) then
      results[#results + 1] = {0, version, has_live}
      return results
    end
    local expires_ms, new_version = f[5], f[6]
    if kind == 'put' then
      redis.call('SET', live, snapshot, 'PXAT', expires_ms)
      redis.call('HSET', meta, 'v', new_version, 'o', f[7], 'st', f[8], 'x', expires_ms, f[9], '1')
      redis.call('HDEL', meta, 'a')  -- an older worker's plain copy
      redis.call('PEXPIREAT', meta, f[10])
      redis.call('SET', archive, snapshot, 'PXAT', f[10])
      redis.call('ZADD', index, expires_ms, member)
    elseif kind == 'delete' then
      redis.call('DEL', live, archive)
      redis.call('HDEL', meta, 'a', 'x')
      redis.call('HSET', meta, 'v', new_version, 'st', 'deleted', f[9], '1')
      redis.call('PEXPIREAT', meta, f[10])
      redis.call('ZREM', index, member)
    end
    -- kind 'keep' changes no state (a rejection, a no-op): only its answer is kept, for replays.
    redis.call('HSET', outbox, field, event)
    redis.call('PEXPIRE', outbox, outbox_ttl)
    results[#results + 1] = 1
  end
end
return results
