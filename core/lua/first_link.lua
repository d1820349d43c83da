-- Remember when an instance's phone was first linked: its warm-up counts days from then, whatever
-- instance it was linked through, so a second instance on the phone, or one deleted and created
-- again, keeps the phone's warm-up day. The instance record carries the phone's day (the lane
-- scripts and the status read it there).
-- Stamped with Redis's clock: the claim counts the warm-up's days by it.
-- KEYS: 1 inst (the instance hash), 2 phone (its phone's pace hash)
-- ARGV: none
-- returns: 1 if this was the phone's first link, else 0
local inst, phone = KEYS[1], KEYS[2]

if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local first = redis.call('HSETNX', phone, 'firstLinkedMs', now)
redis.call('HSET', inst, 'firstLinkedMs', redis.call('HGET', phone, 'firstLinkedMs'))
return first
