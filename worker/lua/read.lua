-- Reads what decisions about one session need, in one atomic step.
-- KEYS: live, meta, outbox, archive. ARGV: n, then n outbox fields (records of this batch), then n
-- commandId mark fields.
-- Returns: {live snapshot|false, version, owner|false, expires_ms|false, status|false,
--           expired snapshot|false, {marks}, {outbox events}}
-- The expired snapshot is set only for a session whose TTL ran out and whose expiry has not
-- been announced yet: a create of the same id announces it first.
local n = tonumber(ARGV[1])
local outbox_fields, mark_fields = {}, {}
for i = 1, n do
  outbox_fields[i] = ARGV[1 + i]
  mark_fields[i] = ARGV[1 + n + i]
end
local live = redis.call('GET', KEYS[1])
local meta = redis.call('HMGET', KEYS[2], 'v', 'o', 'x', 'st')
local expired = false
if not live and (meta[4] == 'active' or meta[4] == 'completed') then
  expired = redis.call('GET', KEYS[4]) or redis.call('HGET', KEYS[2], 'a')
end
local marks = redis.call('HMGET', KEYS[2], unpack(mark_fields))
local replays = redis.call('HMGET', KEYS[3], unpack(outbox_fields))
return {live, tonumber(meta[1] or '0'), meta[2], meta[3], meta[4], expired, marks, replays}
