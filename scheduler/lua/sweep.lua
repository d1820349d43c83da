-- Recovery: wake an instance that has waiting messages but no wake-up that will ever run: none
-- scheduled, or one whose arq job is neither queued nor running (lost to a crash or an outage).
-- ARGV 7 the owner's arq queue. Returns 1 when it had to act.
local waiting = 0
for i = 1, 3 do waiting = waiting + redis.call('LLEN', lane_key(i)) end
if waiting == 0 then return 0 end
local due = redis.call('HGET', pump, 'due')
if due then
  local job = 'pump:' .. name .. ':' .. (redis.call('HGET', pump, 'token') or '')
  if redis.call('EXISTS', 'arq:in-progress:' .. job) == 1 then return 0 end
  if due ~= '0' and redis.call('ZSCORE', ARGV[7], job) then return 0 end
  reset_pump()
end
wake_if_open()
return 1
