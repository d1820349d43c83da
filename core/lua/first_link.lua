-- Remember when an instance's phone was first linked: its warm-up counts days from then, whatever
-- instance it was linked through, so a second instance on the phone, or one deleted and created
-- again, keeps the phone's warm-up day. The instance record carries the phone's day (the lane
-- scripts and the status read it there).
-- KEYS: 1 instance hash, 2 its phone's pace hash. Returns 1 if this was the phone's first link.
-- Stamped with Redis's clock: the claim counts the warm-up's days by it.
if redis.call('HEXISTS', KEYS[1], 'createdAt') == 0 then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local first = redis.call('HSETNX', KEYS[2], 'firstLinkedMs', now)
redis.call('HSET', KEYS[1], 'firstLinkedMs', redis.call('HGET', KEYS[2], 'firstLinkedMs'))
return first
