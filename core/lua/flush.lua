-- Cancel every waiting message of the instance, at most `room` from the head of the lanes (urgent
-- first): the caller calls again while some are left, so a backlog of 100,000 never holds Redis
-- in one call. When the instance is being deleted, from this step on it accepts nothing more
-- (accept.lua checks createdAt), it leaves its owner's due-set, and a message in flight ends
-- failed with `inflight_error`, since no send will record its outcome.
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance), 3 retention (s), 4 fields (JSON of a cancelled
--       record's changes), 5 retiring ('1' when the instance is being deleted), 6 inflight_error,
--       7 room (messages to cancel at most)
-- returns: {how many still wait, then the cancelled ids}
local retention, fields, retiring, inflight_error = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local room = tonumber(ARGV[7])

local cancelled = {}
if retiring == '1' then
  local owner = redis.call('HGET', inst, 'owner')
  if owner then redis.call('ZREM', K.due(owner), name) end
  redis.call('HDEL', inst, 'createdAt')
  local inflight = redis.call('HGET', pump, 'inflight')
  if inflight and redis.call('HGET', K.message(inflight), F.status) == 'sending' then
    -- deleting logs the number out: its send cannot be recorded
    redis.call('HSET', K.message(inflight), F.status, 'failed', F.error, inflight_error, F.errorCode, 'logged_out')
    redis.call('EXPIRE', K.message(inflight), retention)
    redis.call('HINCRBY', stats, 'failed', 1)
    count_unsent(stats, 'logged_out')
  end
  redis.call('DEL', pump)
end
local left = 0
for i = 1, 3 do
  if room > 0 then
    local chunk = redis.call('LRANGE', lane_key(i), 0, room - 1)
    for _, id in ipairs(chunk) do
      local msg = K.message(id)
      if redis.call('EXISTS', msg) == 1 then
        hset_json(msg, fields)
        redis.call('EXPIRE', msg, retention)
        table.insert(cancelled, id)
      end
    end
    redis.call('LTRIM', lane_key(i), #chunk, -1)
    room = room - #chunk
  end
  left = left + redis.call('LLEN', lane_key(i))
end
redis.call('HINCRBY', stats, 'cancelled', #cancelled)
if #cancelled > 0 then count_unsent(stats, cjson.decode(fields)[F.errorCode], #cancelled) end
table.insert(cancelled, 1, left)
return cancelled
