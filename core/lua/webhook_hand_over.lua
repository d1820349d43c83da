-- The lock holder lets go of an instance with events left, putting it back in the due-set for
-- `due_ms` (its head's retry; '' for now, by Redis's clock); without a lock (empty token) it only
-- schedules: a kick. With `keep_earlier` '1' an earlier due time already there is kept (a kick for
-- now never jumps ahead of a head waiting for its retry; the head goes first).
-- KEYS: 1 lock, 2 due (the due-set), 3 bell (its bell)
-- ARGV: 1 token (the lock's, '' for none), 2 instance (its name), 3 due_ms ('' for now), 4 keep_earlier
-- returns: nothing
local lock, due, bell = KEYS[1], KEYS[2], KEYS[3]
local token, instance, due_ms, keep_earlier = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
local at = due_ms == '' and redis_ms() or due_ms -- redis_ms: outbox_add.lua
if keep_earlier == '1' then
  redis.call('ZADD', due, 'NX', at, instance)
else
  redis.call('ZADD', due, at, instance)
end
redis.call('RPUSH', bell, 1)
redis.call('LTRIM', bell, -1, -1)
