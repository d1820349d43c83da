-- Pause the instance's bulk lane until ARGV 8 (ms) for the reason ARGV 9 (a longer pause already
-- set stays, with its reason), or, when ARGV 8 is '', lift its pause now (an admin's call).
-- Returns the reason of the pause lifted, or of the pause in force; '' when there is none.
if ARGV[8] == '' then
  local reason = redis.call('HGET', pump, 'throttleReason')
  if not reason then return '' end
  redis.call('HDEL', pump, 'throttledUntil', 'throttleReason')
  wake_if_open()
  return reason
end
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return '' end
if tonumber(ARGV[8]) <= tonumber(redis.call('HGET', pump, 'throttledUntil') or '0') then
  return redis.call('HGET', pump, 'throttleReason') or ''
end
redis.call('HSET', pump, 'throttledUntil', ARGV[8], 'throttleReason', ARGV[9])
return ARGV[9]
