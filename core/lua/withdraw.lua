-- Take messages back from their lanes: each one still waiting ends `cancelled` with ARGV 9 as its
-- error; one a claim picked meanwhile goes out (it is not in its lane any more). Used for messages
-- no replica confirmed in time (Lanes.accept), so that the 503 the API answers means "not
-- queued", and for a client's cancel (DELETE /message/{id}), race-free against a claim.
-- ARGV 8 retention (s), 9 error; from 10 the message ids. Returns how many were taken back.
local taken = 0
for i = 10, #ARGV do
  local msg = msg_prefix .. ARGV[i]
  local lane = lane_index(redis.call('HGET', msg, F.lane) or '')
  if lane and redis.call('LREM', lane_key(lane), 1, ARGV[i]) == 1 then
    redis.call('HSET', msg, F.status, 'cancelled', F.error, ARGV[9])
    redis.call('EXPIRE', msg, tonumber(ARGV[8]))
    taken = taken + 1
  end
end
redis.call('HINCRBY', stats, 'cancelled', taken)
return taken
