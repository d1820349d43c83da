-- Cancel every waiting message of the instance. ARGV 7 retention (s), 8 record fields JSON,
-- 9 '1' when the instance is being deleted: from this step on it accepts nothing more (accept.lua
-- checks createdAt), and a message in flight ends failed with ARGV 10 as its error, since no
-- pump will record its outcome. Returns the cancelled ids.
local retention, cancelled = tonumber(ARGV[7]), {}
if ARGV[9] == '1' then
  redis.call('HDEL', inst, 'createdAt')
  local inflight = redis.call('HGET', pump, 'inflight')
  if inflight and redis.call('HGET', msg_prefix .. inflight, 'status') == 'sending' then
    redis.call('HSET', msg_prefix .. inflight, 'status', 'failed', 'error', ARGV[10])
    redis.call('EXPIRE', msg_prefix .. inflight, retention)
    redis.call('HINCRBY', stats, 'failed', 1)
  end
  redis.call('DEL', pump)
end
for i = 1, 3 do
  for _, id in ipairs(redis.call('LRANGE', lane_key(i), 0, -1)) do
    local msg = msg_prefix .. id
    if redis.call('EXISTS', msg) == 1 then
      hset_json(msg, ARGV[8])
      redis.call('EXPIRE', msg, retention)
      table.insert(cancelled, id)
    end
  end
  redis.call('DEL', lane_key(i))
end
redis.call('HINCRBY', stats, 'cancelled', #cancelled)
return cancelled
