-- The last step of a send: record the outcome of the in-flight message and schedule the
-- instance's next wake-up in its owner's due-set.
-- ARGV 8 message id, 9 outcome (sent | failed | failed_uncounted | requeue), 10 record fields JSON,
-- 11 next gaps JSON {lane: ms} (sent only), 12 retry-not-before ms (requeue only), 13 retention (s),
-- 14 the key mapping WhatsApp's message id to ours (sent only), 15 the worker that sent, 16 the
-- epoch it picked the message under.
-- If that worker no longer owns the instance under that epoch, the new owner has taken the
-- message back (kick.lua) and it is not ours to record: the send, if it happened, is the one
-- possible duplicate that adoption allows, flagged on the message. A message that is no longer
-- the one in flight was recorded already (a retry after a lost answer): nothing happens twice.
-- Returns 1 when recorded.
local id, outcome = ARGV[8], ARGV[9]
local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
if owner ~= ARGV[15] or epoch ~= ARGV[16] then return 0 end
if redis.call('HGET', pump, 'inflight') ~= id then return 0 end
local lane = lane_index(redis.call('HGET', pump, 'inflightLane'))
redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
local msg = msg_prefix .. id
local exists = redis.call('EXISTS', msg) == 1
local cancelled = exists and redis.call('HGET', msg, F.status) == 'cancelled'
if exists and not cancelled then hset_json(msg, ARGV[10]) end
if lane then count_send(stats, LANES[lane], outcome, msg, now) end
if outcome == 'sent' then
  -- receipts name WhatsApp's id: remember which message it was
  redis.call('SET', ARGV[14], id, 'EX', tonumber(ARGV[13]))
  local gaps = cjson.decode(ARGV[11])
  redis.call('HSET', pump, 'last', now, 'gap:urgent', gaps.urgent, 'gap:normal', gaps.normal, 'gap:bulk', gaps.bulk)
  redis.call('HINCRBY', stats, 'sent', 1)
elseif lane and (outcome ~= 'failed' or not exists) then
  redis.call('ZREM', sent_key(lane), id) -- nothing went out: give the quota back
end
if outcome == 'requeue' and exists and not cancelled and lane then
  redis.call('LPUSH', lane_key(lane), id)
  redis.call('HSET', pump, 'retry:' .. LANES[lane], ARGV[12])
elseif exists and not cancelled then
  redis.call('EXPIRE', msg, tonumber(ARGV[13]))
  if outcome ~= 'sent' then redis.call('HINCRBY', stats, 'failed', 1) end
end
wake_if_open()
return 1
