-- Reads what decisions about one session need, in one atomic step.
-- KEYS: live, record, outbox, then the older layout's meta and archive (see record.lua).
-- ARGV: n, then n outbox fields (records of this batch), then n commandIds.
-- Returns: {live snapshot|false, version, owner|false, expires_ms|false, status|false,
--           expired snapshot|false, {1|false per commandId: applied before}, {outbox events}}
-- The expired snapshot is set only for a session whose TTL ran out and whose expiry has not
-- been announced yet: a create of the same id announces it first.
local n = tonumber(ARGV[1])
local outbox_fields = {}
for i = 1, n do
  outbox_fields[i] = ARGV[1 + i]
end
local live = redis.call('GET', KEYS[1])
local rec = read_record(KEYS[2], KEYS[4], KEYS[5])
if not rec then
  rec = {v = 0, o = '', st = '', x = '', marks = '', copy = ''}
end
local expired = false
if not live and (rec.st == 'active' or rec.st == 'completed') and rec.copy ~= '' then
  expired = rec.copy
end
local marks = {}
for i = 1, n do
  marks[i] = has_mark(rec, ARGV[1 + n + i]) and 1 or false
end
local function given(value)
  return value ~= '' and value or false
end
local replays = redis.call('HMGET', KEYS[3], unpack(outbox_fields))
return {live, rec.v, given(rec.o), given(rec.x), given(rec.st), expired, marks, replays}
