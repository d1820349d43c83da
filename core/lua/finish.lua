-- The pump's last step: record the outcome of the in-flight message and schedule what follows.
-- ARGV 7 message id, 8 outcome (sent | failed | failed_uncounted | requeue), 9 record fields JSON,
-- 10 next gaps JSON {lane: ms} (sent only), 11 retry-not-before ms (requeue only), 12 retention (s),
-- 13 the key mapping WhatsApp's message id to ours (sent only).
-- 14 the worker that ran the pump, 15 its epoch. If it no longer owns the instance under that
-- epoch, the new owner has taken the message back (kick.lua) and it is not ours to record: the
-- send, if it happened, is the one possible duplicate that adoption allows, flagged on the message.
local id, outcome = ARGV[7], ARGV[8]
local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
if owner ~= ARGV[14] or epoch ~= ARGV[15] then return 0 end
local lane = lane_index(redis.call('HGET', pump, 'inflightLane'))
redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
local msg = msg_prefix .. id
local exists = redis.call('EXISTS', msg) == 1
local cancelled = exists and redis.call('HGET', msg, 'status') == 'cancelled'
if exists and not cancelled then hset_json(msg, ARGV[9]) end
if lane then count_send(stats, LANES[lane], outcome, msg, now) end
if outcome == 'sent' then
  -- receipts name WhatsApp's id: remember which message it was
  redis.call('SET', ARGV[13], id, 'EX', tonumber(ARGV[12]))
  local gaps = cjson.decode(ARGV[10])
  redis.call('HSET', pump, 'last', now, 'gap:urgent', gaps.urgent, 'gap:normal', gaps.normal, 'gap:bulk', gaps.bulk)
  redis.call('HINCRBY', stats, 'sent', 1)
elseif lane and (outcome ~= 'failed' or not exists) then
  redis.call('ZREM', sent_key(lane), id) -- nothing went out: give the quota back
end
if outcome == 'requeue' and exists and not cancelled and lane then
  redis.call('LPUSH', lane_key(lane), id)
  redis.call('HSET', pump, 'retry:' .. LANES[lane], ARGV[11])
elseif exists and not cancelled then
  redis.call('EXPIRE', msg, tonumber(ARGV[12]))
  if outcome ~= 'sent' then redis.call('HINCRBY', stats, 'failed', 1) end
end
wake_if_open()
return 1
