-- Cancel every waiting message of the instance. ARGV 7 retention (s), 8 record fields JSON.
-- Returns the cancelled ids.
local retention, cancelled = tonumber(ARGV[7]), {}
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
