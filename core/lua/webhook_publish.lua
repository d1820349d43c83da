-- Records a new event and puts its instance in the webhook due-set for now, unless it is there
-- already (with its head's retry, say: an instance's events go in order). An instance being
-- deleted (no createdAt) takes no more events: they would outlive it. The event also goes on the
-- tenant's and the gateway's event streams (GET /events), trimmed to about their length limits.
-- KEYS: 1 record, 2 FIFO, 3 log, 4 sequence, 5 due-set, 6 its bell, 7 instance hash,
--       8 tenant's event stream, 9 gateway's event stream
-- ARGV: 1 delivery id, 2 record, 3 now (ms), 4 instance name, 5 the envelope, 6 tenant stream
--       length, 7 gateway stream length
if redis.call('HEXISTS', KEYS[7], 'createdAt') == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[1])
for i, key in ipairs({KEYS[8], KEYS[9]}) do
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[5 + i], '*', 'instance', ARGV[4], 'delivery', ARGV[1], 'envelope', ARGV[5])
end
if redis.call('ZADD', KEYS[5], 'NX', ARGV[3], ARGV[4]) == 1 then
  redis.call('RPUSH', KEYS[6], 1)
  redis.call('LTRIM', KEYS[6], -1, -1)
end
return 1
