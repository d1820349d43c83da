-- Records a new event and, unless one is pending already, queues a delivery job for now. An
-- instance being deleted (no createdAt) takes no more events: they would outlive it.
-- The event also goes on the tenant's and the gateway's event streams (GET /events), trimmed to
-- about their length limits.
-- KEYS: 1 record, 2 FIFO, 3 log, 4 sequence, 5 job-pending flag, 6 arq queue, 7 instance hash,
--       8 tenant's event stream, 9 gateway's event stream
-- ARGV: 1-5 see webhook_enqueue.lua, 6 delivery id, 7 record, 8 flag expiry (s), 9 instance name,
--       10 the envelope, 11 tenant stream length, 12 gateway stream length
if redis.call('HEXISTS', KEYS[7], 'createdAt') == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[7])
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[6])
if redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[8]) then enqueue(KEYS[6], fresh_id, now) end
for i, key in ipairs({KEYS[8], KEYS[9]}) do
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[10 + i], '*', 'instance', ARGV[9], 'delivery', ARGV[6],
    'envelope', ARGV[10])
end
return 1
