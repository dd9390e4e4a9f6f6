-- Claims the sessions of one bucket whose TTL has run out, for announcing.
-- KEYS[1]: the bucket's expiry index. ARGV: now (ms), limit, lease (ms), key base ("sw:{b}:").
-- A claimed entry is re-scored to now + lease: if the claimer dies before it finishes, another
-- sweeper claims it again then (and sends the identical event). Entries of deleted, announced
-- or forgotten sessions are dropped; a session still alive (its TTL was extended, or Redis'
-- clock is behind ours) is re-scored to its real expiry.
-- Returns {{session id, version, owner, expires_ms, last snapshot}, ...}: the snapshot as
-- archived (`a:<id>`, compressed) or, from an older worker, the meta hash's plain `a` field.
local index, now, lease, base = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]
local due = redis.call('ZRANGE', index, '-inf', now, 'BYSCORE', 'LIMIT', 0, ARGV[2])
local claimed = {}
for _, sid in ipairs(due) do
  local live = base .. 's:' .. sid
  local ttl = redis.call('PTTL', live)
  if ttl > 0 then
    redis.call('ZADD', index, now + ttl, sid)
  else
    local m = redis.call('HMGET', base .. 'm:' .. sid, 'v', 'st', 'o', 'x', 'a')
    local last = redis.call('GET', base .. 'a:' .. sid) or m[5]
    if (m[2] == 'active' or m[2] == 'completed') and last then
      redis.call('ZADD', index, now + lease, sid)
      claimed[#claimed + 1] = {sid, m[1], m[3], m[4], last}
    else
      redis.call('ZREM', index, sid)
    end
  end
end
return claimed
