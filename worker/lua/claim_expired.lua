-- Claims the sessions of one bucket whose TTL has run out, for announcing.
-- KEYS[1]: the bucket's expiry index. ARGV: now (ms), limit, lease (ms), key base ("sw:{b}:").
-- A claimed entry is re-scored to now + lease: if the claimer dies before it finishes, another
-- sweeper claims it again then (and sends the identical event). Entries of deleted, announced
-- or forgotten sessions are dropped; a session still alive (its TTL was extended, or Redis'
-- clock is behind ours) is re-scored to its real expiry.
-- Returns {{session id, version, owner, expires_ms, last snapshot, trace}, ...}: the snapshot as
-- kept in the session's record (compressed) or, from an older worker, as it kept it; the trace
-- of the command that last set the TTL, or '' when none was recorded.
local index, now, lease, base = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]
local due = redis.call('ZRANGE', index, '-inf', now, 'BYSCORE', 'LIMIT', 0, ARGV[2])
local claimed = {}
for _, sid in ipairs(due) do
  local ttl = redis.call('PTTL', base .. 's:' .. sid)
  if ttl > 0 then
    redis.call('ZADD', index, now + ttl, sid)
  else
    local rec = read_record(base .. 'r:' .. sid, base .. 'm:' .. sid, base .. 'a:' .. sid)
    if rec and (rec.st == 'active' or rec.st == 'completed') and rec.copy ~= '' then
      redis.call('ZADD', index, now + lease, sid)
      claimed[#claimed + 1] = {sid, rec.v, rec.o, rec.x, rec.copy, rec.t}
    else
      redis.call('ZREM', index, sid)
    end
  end
end
return claimed
