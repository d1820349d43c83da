-- Cancel every waiting message of the instance. ARGV 8 retention (s), 9 record fields JSON,
-- 10 '1' when the instance is being deleted: from this step on it accepts nothing more (accept.lua
-- checks createdAt), it leaves its owner's due-set, and a message in flight ends failed with
-- ARGV 11 as its error, since no send will record its outcome.
-- At most ARGV 12 messages per call, from the head of the lanes (urgent first): the caller calls
-- again while some are left, so a backlog of 100,000 never holds Redis in one call.
-- Returns {how many still wait, then the cancelled ids}.
local retention, room, cancelled = tonumber(ARGV[8]), tonumber(ARGV[12]), {}
if ARGV[10] == '1' then
  local owner = redis.call('HGET', inst, 'owner')
  if owner then redis.call('ZREM', due_prefix .. owner, name) end
  redis.call('HDEL', inst, 'createdAt')
  local inflight = redis.call('HGET', pump, 'inflight')
  if inflight and redis.call('HGET', msg_prefix .. inflight, F.status) == 'sending' then
    -- deleting logs the number out: its send cannot be recorded
    redis.call('HSET', msg_prefix .. inflight, F.status, 'failed', F.error, ARGV[11], F.errorCode, 'logged_out')
    redis.call('EXPIRE', msg_prefix .. inflight, retention)
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
      local msg = msg_prefix .. id
      if redis.call('EXISTS', msg) == 1 then
        hset_json(msg, ARGV[9])
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
if #cancelled > 0 then count_unsent(stats, cjson.decode(ARGV[9])[F.errorCode], #cancelled) end
table.insert(cancelled, 1, left)
return cancelled
