-- Accept a message: record + lane entry + wake-up, all or nothing.
-- KEYS[9] message hash. ARGV 7 message id, 8 lane, 9 record JSON. Returns 0 if the instance is gone.
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
hset_json(KEYS[9], ARGV[9])
redis.call('RPUSH', lane_key(lane_index(ARGV[8])), ARGV[7])
redis.call('HINCRBY', stats, 'accepted', 1)
wake_if_open()
return 1
