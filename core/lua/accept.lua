-- Accept messages for one instance: records + lane entries + wake-up, all or nothing.
-- ARGV from 8: for each message, its id, its lane and its record as JSON.
-- Returns 0 if the instance is gone (nothing is recorded then).
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
for i = 8, #ARGV, 3 do
  hset_json(msg_prefix .. ARGV[i], ARGV[i + 2])
  redis.call('RPUSH', lane_key(lane_index(ARGV[i + 1])), ARGV[i])
end
redis.call('HINCRBY', stats, 'accepted', (#ARGV - 7) / 3)
wake_if_open()
return 1
