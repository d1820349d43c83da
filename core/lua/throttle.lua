-- Pause the instance's bulk lane until `until_ms` for `reason` (a longer pause already set stays,
-- with its reason), or, when `until_ms` is '', lift its pause now (an admin's call).
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance), 3 until_ms ('' to lift the pause), 4 reason
-- returns: the reason of the pause lifted, or of the pause in force; '' when there is none
local until_ms, reason = ARGV[3], ARGV[4]

if until_ms == '' then
  local lifted = redis.call('HGET', pump, 'throttleReason')
  if not lifted then return '' end
  redis.call('HDEL', pump, 'throttledUntil', 'throttleReason')
  wake_if_open()
  return lifted
end
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return '' end
if tonumber(until_ms) <= tonumber(redis.call('HGET', pump, 'throttledUntil') or '0') then
  return redis.call('HGET', pump, 'throttleReason') or ''
end
redis.call('HSET', pump, 'throttledUntil', until_ms, 'throttleReason', reason)
return reason
