-- A delivery loop's step: take up to ARGV 1 instances whose webhook events are due by Redis's
-- clock (each goes to one loop; its deliverer then claims the instance's lock) and clear the bell.
-- KEYS: 1 due-set, 2 its bell. ARGV: 1 how many at most.
-- Returns {Redis's time (ms), the next due time left (ms) or '', names taken...}.
local now = redis_ms() -- outbox_add.lua
local taken = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, name in ipairs(taken) do redis.call('ZREM', KEYS[1], name) end
redis.call('DEL', KEYS[2])
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
table.insert(taken, 1, first or '')
table.insert(taken, 1, now)
return taken
