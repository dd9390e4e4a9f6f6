-- Applies the decided operations of a batch, session by session, each session's in order, each
-- guarded by the state it was decided on (version and whether the live record exists). A
-- session's run stops at its first mismatch so a stale decision never lands. An operation whose
-- record already has an outbox entry was applied before (a replay after a crash): its original
-- event is returned, nothing changes, and that session's run stops there too, since the
-- operations after it were decided on a guess of its outcome.
--
-- Several sessions per call (one call per session cost Redis and redis-py more than the work):
-- KEYS: 6 per session: live, record, outbox, index, then the older layout's meta and archive
--   (see record.lua). On a cluster, one call's sessions share a hash tag.
-- ARGV[1]: outbox TTL (ms); then per session: its id (index member), n, then 3 per operation:
--   the small fields joined by \31 (kind, outbox field, expected version, expected live (0/1),
--   expires at (ms), new version, owner, status, commandId, record expire-at (ms), check
--   applied (0/1), the traceparent to keep for the expiry (put; empty: none)), the event, the stored (compressed) snapshot, written to the live record and
--   kept in the record. "check applied": decided without knowing the session's applied
--   commandIds (a cached view), so a commandId applied before makes the operation stale.
-- Returns per session one entry per operation run: 1 applied, {2, event} replayed,
-- {0, version, live} stale. kind: 'put' (create or update), 'delete', or 'keep'.
local outbox_ttl = ARGV[1]

local function apply_session(k, member, first, last)
  local live, record, outbox, index = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local meta, archive = KEYS[k + 4], KEYS[k + 5]
  local rec = read_record(record, meta, archive)
  local save_at = nil  -- the record changed and is written once, before returning
  local function save()
    if save_at then
      write_record(record, meta, archive, rec, save_at)
    end
  end
  local results = {}
  for i = first, last, 3 do
    local f = split_fields(ARGV[i])
    local kind, field, event, snapshot = f[1], f[2], ARGV[i + 1], ARGV[i + 2]
    local prior = redis.call('HGET', outbox, field)
    if prior then
      results[#results + 1] = {2, prior}
      save()
      return results
    end
    local version = rec and rec.v or 0
    local has_live = redis.call('EXISTS', live)
    if version ~= tonumber(f[3]) or has_live ~= tonumber(f[4])
        or (f[11] == '1' and rec and has_mark(rec, f[9])) then
      results[#results + 1] = {0, version, has_live}
      save()
      return results
    end
    local expires_ms = f[5]
    if kind ~= 'keep' then
      rec = rec or new_record()
      rec.v = tonumber(f[6])
      add_mark(rec, f[9])
      save_at = f[10]
    end
    if kind == 'put' then
      redis.call('SET', live, snapshot, 'PXAT', expires_ms)
      rec.o, rec.st, rec.x, rec.copy, rec.t = f[7], f[8], expires_ms, snapshot, f[12] or ''
      redis.call('ZADD', index, expires_ms, member)
    elseif kind == 'delete' then
      redis.call('DEL', live)
      rec.st, rec.x, rec.copy, rec.t = 'deleted', '', '', ''
      redis.call('ZREM', index, member)
    end
    -- kind 'keep' changes no state (a rejection, a no-op): only its answer is kept, for replays.
    redis.call('HSET', outbox, field, event)
    redis.call('PEXPIRE', outbox, outbox_ttl)
    results[#results + 1] = 1
  end
  save()
  return results
end

local replies = {}
local a = 2
for k = 1, #KEYS, 6 do
  local n = tonumber(ARGV[a + 1])
  replies[#replies + 1] = apply_session(k, ARGV[a], a + 2, a + 1 + 3 * n)
  a = a + 2 + 3 * n
end
return replies
