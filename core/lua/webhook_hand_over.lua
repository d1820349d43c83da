-- The lock holder lets go of an instance with events left, putting it back in the due-set for
-- `due` ms (its head's retry; '' for now, by Redis's clock); without a lock (empty token) it only schedules: a kick.
-- With ARGV 4 '1' an earlier due time already there is kept (a kick for now never jumps ahead of
-- a head waiting for its retry; the head goes first).
-- KEYS: 1 lock, 2 due-set, 3 its bell. ARGV: 1 lock token, 2 instance name, 3 due (ms), 4 keep earlier
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local due = ARGV[3] == '' and redis_ms() or ARGV[3] -- outbox_add.lua
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], 'NX', due, ARGV[2])
else
  redis.call('ZADD', KEYS[2], due, ARGV[2])
end
redis.call('RPUSH', KEYS[3], 1)
redis.call('LTRIM', KEYS[3], -1, -1)
