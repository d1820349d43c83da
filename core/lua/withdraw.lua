-- Take messages back from their lanes: each one still waiting ends `cancelled` with `cancel_error` as its
-- error; one a claim picked meanwhile goes out (it is not in its lane any more). Used for messages
-- no replica confirmed in time (Lanes.accept), so that the 503 the API answers means "not
-- queued", and for a client's cancel (DELETE /message/{id}), race-free against a claim.
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance), 3 retention (s), 4 cancel_error; from 5 the message ids
-- returns: how many were taken back
local retention, cancel_error = tonumber(ARGV[3]), ARGV[4]
local ids = {}
for i = 5, #ARGV do table.insert(ids, ARGV[i]) end

local taken = 0
for _, id in ipairs(ids) do
  local msg = K.message(id)
  local lane = lane_index(redis.call('HGET', msg, F.lane) or '')
  if lane and redis.call('LREM', lane_key(lane), 1, id) == 1 then
    redis.call('HSET', msg, F.status, 'cancelled', F.error, cancel_error)
    redis.call('EXPIRE', msg, retention)
    taken = taken + 1
  end
end
redis.call('HINCRBY', stats, 'cancelled', taken)
return taken
