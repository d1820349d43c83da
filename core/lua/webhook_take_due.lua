-- A delivery loop's step: take up to `room` instances whose webhook events are due by Redis's
-- clock (each goes to one loop; its deliverer then claims the instance's lock) and clear the bell.
-- KEYS: 1 due (the due-set), 2 bell (its bell)
-- ARGV: 1 room (instances to take at most)
-- returns: {Redis's time (ms), the next due time left (ms) or '', then the names taken}
local due, bell = KEYS[1], KEYS[2]
local room = tonumber(ARGV[1])

local now = redis_ms() -- outbox_add.lua
local taken = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, room)
for _, name in ipairs(taken) do redis.call('ZREM', due, name) end
redis.call('DEL', bell)
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')[2]
table.insert(taken, 1, first or '')
table.insert(taken, 1, now)
return taken
