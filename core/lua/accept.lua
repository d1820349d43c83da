-- Accept a message: record + lane entry + wake-up, all or nothing.
-- KEYS[9] message hash, 10 the instance's index of recent messages. ARGV 7 message id, 8 lane,
-- 9 record JSON, 10 how many ids the index keeps. Returns 0 if the instance is gone.
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
hset_json(KEYS[9], ARGV[9])
redis.call('RPUSH', lane_key(lane_index(ARGV[8])), ARGV[7])
-- the gateway-wide count of accepted messages orders the index (milliseconds would tie)
local order = redis.call('HINCRBY', stats, 'accepted', 1)
redis.call('ZADD', KEYS[10], order, ARGV[7])
redis.call('ZREMRANGEBYRANK', KEYS[10], 0, -(tonumber(ARGV[10]) + 1))
wake_if_open()
return 1
