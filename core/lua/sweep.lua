-- Recovery: wake an instance that has waiting messages but no wake-up that will ever run: none
-- scheduled, or one whose arq job is neither queued nor running (lost to a crash or an outage).
-- ARGV 7 the owner's arq queue, 8 JSON list of the pump jobs this worker is running right now
-- (arq's in-progress keys would not do: a poll loop cut off by a Redis outage leaves them behind
-- for the length of the job timeout). Returns 1 when it had to act.
local waiting = 0
for i = 1, 3 do waiting = waiting + redis.call('LLEN', lane_key(i)) end
if waiting == 0 then return 0 end
local due = redis.call('HGET', pump, 'due')
if due then
  local job = 'pump:' .. name .. ':' .. (redis.call('HGET', pump, 'token') or '')
  for _, running in ipairs(cjson.decode(ARGV[8])) do
    if running == job then return 0 end
  end
  if due ~= '0' and redis.call('ZSCORE', ARGV[7], job) then return 0 end
  reset_pump()
end
wake_if_open()
return 1
