-- Shared by every script (prepended when the scripts are loaded, see store.py).
--
-- A session's record `r:<id>` is one STRING:
--   version \31 owner \31 status \31 expires_ms \31 applied commandIds (space-separated)
--   [\31 trace] \30 copy
-- `trace` is the W3C traceparent of the command that last set the TTL, when tracing recorded
-- one (the expiry event's span links to it); without one the field is left out, and the record
-- is byte for byte what format 4 wrote.
-- `copy` is the stored snapshot, kept past the live record's TTL for the expiry event, empty
-- once no expiry is due (deleted, announced). Ids are printable ASCII without spaces
-- (contracts/fields.py), so no separator occurs inside a field.
-- Workers before this layout kept the same in a HASH `m:<id>` (v, o, st, x, c:<commandId>, and
-- 0.1's plain copy `a`) plus a STRING `a:<id>`: read_record reads those when there is no record,
-- and write_record removes them once the record replaces them.
local function split_fields(text)  -- by \31, empty fields kept
  local out = {}
  for part in (text .. '\31'):gmatch('([^\31]*)\31') do
    out[#out + 1] = part
  end
  return out
end

local function new_record()  -- what a session never seen before starts from
  return {v = 0, o = '', st = '', x = '', marks = '', t = '', copy = ''}
end

local function read_record(record_key, meta_key, archive_key)
  local raw = redis.call('GET', record_key)
  if raw then
    local sep = string.find(raw, '\30', 1, true)
    local f = split_fields(string.sub(raw, 1, sep - 1))
    return {v = tonumber(f[1]), o = f[2], st = f[3], x = f[4], marks = f[5], t = f[6] or '',
            copy = string.sub(raw, sep + 1)}
  end
  local h = redis.call('HGETALL', meta_key)
  if #h == 0 then
    return nil
  end
  local rec = new_record()
  rec.legacy = true
  local marks = {}
  for i = 1, #h, 2 do
    local k, value = h[i], h[i + 1]
    if k == 'v' then rec.v = tonumber(value)
    elseif k == 'o' then rec.o = value
    elseif k == 'st' then rec.st = value
    elseif k == 'x' then rec.x = value
    elseif k == 'a' then rec.copy = value
    elseif string.sub(k, 1, 2) == 'c:' then marks[#marks + 1] = string.sub(k, 3)
    end
  end
  rec.marks = table.concat(marks, ' ')
  rec.copy = redis.call('GET', archive_key) or rec.copy
  return rec
end

local function has_mark(rec, command_id)
  return string.find(' ' .. rec.marks .. ' ', ' ' .. command_id .. ' ', 1, true) ~= nil
end

local function add_mark(rec, command_id)
  rec.marks = rec.marks == '' and command_id or rec.marks .. ' ' .. command_id
end

local function write_record(record_key, meta_key, archive_key, rec, expire_at_ms)
  local head = table.concat({rec.v, rec.o, rec.st, rec.x, rec.marks}, '\31')
  if rec.t ~= '' then
    head = head .. '\31' .. rec.t
  end
  redis.call('SET', record_key, head .. '\30' .. rec.copy, 'PXAT', expire_at_ms)
  if rec.legacy then
    redis.call('DEL', meta_key, archive_key)
    rec.legacy = false
  end
end

