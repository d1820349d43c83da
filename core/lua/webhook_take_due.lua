-- A delivery loop's step: take up to `room` instances whose webhook events are due (each goes to
-- one loop; its deliverer then claims the instance's lock) and clear the bell.
-- KEYS: 1 due (the due-set), 2 bell (its bell)
-- ARGV: 1 now_ms, 2 room (instances to take at most)
-- returns: {the next due time left (ms) or '', then the names taken}
local due, bell = KEYS[1], KEYS[2]
local now_ms, room = ARGV[1], tonumber(ARGV[2])

local taken = redis.call('ZRANGEBYSCORE', due, '-inf', now_ms, 'LIMIT', 0, room)
for _, name in ipairs(taken) do redis.call('ZREM', due, name) end
redis.call('DEL', bell)
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')[2]
table.insert(taken, 1, first or '')
return taken
