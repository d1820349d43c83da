-- The holder lets go with events left, queueing the job due at `due` ms (none when `due` is
-- empty: a release after an error); a job that found the lock taken meanwhile also gets one now.
-- Without a lock (empty token), it only queues a job: a kick.
-- KEYS: 1 lock, 2 job-pending flag, 3 arq queue
-- ARGV: 1-5 see webhook_enqueue.lua, 6 lock token, 7 id of the job due at `due`, 8 due (ms)
local held = redis.call('GET', KEYS[1]) == ARGV[6]
if held then redis.call('DEL', KEYS[1]) end
local due = tonumber(ARGV[8])
if due then enqueue(KEYS[3], ARGV[7], due) end
if held and (due == nil or due > now) and redis.call('EXISTS', KEYS[2]) == 1 then enqueue(KEYS[3], fresh_id, now) end
