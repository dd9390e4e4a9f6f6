-- Reads what decisions about some sessions need, in one atomic step.
-- KEYS: 5 per session: live, record, outbox, then the older layout's meta and archive (see
--   record.lua). On a cluster, one call's sessions share a hash tag.
-- ARGV: per session: n, then n outbox fields (records of this batch), then n commandIds.
-- Returns per session: {live snapshot|false, version, owner|false, expires_ms|false,
--   status|false, expired snapshot|false, {1|false per commandId: applied before},
--   {outbox events}}
-- The expired snapshot is set only for a session whose TTL ran out and whose expiry has not
-- been announced yet: a create of the same id announces it first.
local function given(value)
  return value ~= '' and value or false
end

local function read_session(k, a, n)
  local outbox_fields = {}
  for i = 1, n do
    outbox_fields[i] = ARGV[a + i]
  end
  local live = redis.call('GET', KEYS[k])
  local rec = read_record(KEYS[k + 1], KEYS[k + 3], KEYS[k + 4]) or new_record()
  local expired = false
  if not live and (rec.st == 'active' or rec.st == 'completed') and rec.copy ~= '' then
    expired = rec.copy
  end
  local marks = {}
  for i = 1, n do
    marks[i] = has_mark(rec, ARGV[a + n + i]) and 1 or false
  end
  local replays = redis.call('HMGET', KEYS[k + 2], unpack(outbox_fields))
  return {live, rec.v, given(rec.o), given(rec.x), given(rec.st), expired, marks, replays}
end

local replies = {}
local a = 1
for k = 1, #KEYS, 5 do
  local n = tonumber(ARGV[a])
  replies[#replies + 1] = read_session(k, a, n)
  a = a + 1 + 2 * n
end
return replies
