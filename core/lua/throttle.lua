-- Pause the instance's bulk lane until ARGV 8 (ms) for the reason ARGV 9 (a longer pause already
-- set stays), or, when ARGV 8 is '', lift its pause now (an admin's call).
-- Returns the reason of the pause set or lifted, '' when there was nothing to do.
if ARGV[8] == '' then
  local reason = redis.call('HGET', pump, 'throttleReason')
  if not reason then return '' end
  redis.call('HDEL', pump, 'throttledUntil', 'throttleReason')
  wake_if_open()
  return reason
end
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return '' end
local paused = math.max(tonumber(ARGV[8]), tonumber(redis.call('HGET', pump, 'throttledUntil') or '0'))
redis.call('HSET', pump, 'throttledUntil', paused, 'throttleReason', ARGV[9])
return ARGV[9]
