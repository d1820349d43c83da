-- Records a new event and, unless one is pending already, queues a delivery job for now. An
-- instance being deleted (no createdAt) takes no more events: they would outlive it.
-- KEYS: 1 record, 2 FIFO, 3 log, 4 sequence, 5 job-pending flag, 6 arq queue, 7 instance hash
-- ARGV: 1-5 see webhook_enqueue.lua, 6 delivery id, 7 record, 8 flag expiry (s)
if redis.call('HEXISTS', KEYS[7], 'createdAt') == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[7])
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[6])
if redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[8]) then enqueue(KEYS[6], fresh_id, now) end
return 1
