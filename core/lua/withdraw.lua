-- Take back a message just accepted that no replica confirmed in time (Lanes.accept), so that the
-- 503 the API answers means "not queued". If it still waits in its lane it ends `cancelled` with
-- ARGV 9 as its error, and 1 is returned; 0 when a pump has picked it meanwhile (it goes out).
-- KEYS[9] message hash. ARGV 7 message id, 8 retention (s), 9 error.
local lane = lane_index(redis.call('HGET', KEYS[9], 'lane') or '')
if not lane or redis.call('LREM', lane_key(lane), 1, ARGV[7]) == 0 then return 0 end
redis.call('HSET', KEYS[9], 'status', 'cancelled', 'error', ARGV[9])
redis.call('EXPIRE', KEYS[9], tonumber(ARGV[8]))
redis.call('HINCRBY', stats, 'cancelled', 1)
return 1
