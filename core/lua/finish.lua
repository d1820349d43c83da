-- The last step of a send: record the outcome of the in-flight message and schedule the
-- instance's next wake-up in its owner's due-set.
-- ARGV 8 message id, 9 outcome (sent | failed | failed_uncounted | requeue), 10 record fields JSON,
-- 11 next gaps JSON {lane: ms} (sent only), 12 ms to wait before a retry, from now by Redis's clock
-- (requeue only), 13 retention (s),
-- 14 the key mapping WhatsApp's message id to ours (sent only), 15 the worker that sent, 16 the
-- epoch it picked the message under, 17 the id of the webhook event that says how it ended and
-- 18 its record ('' for none: a requeue), published in this same step with the outbox's KEYS
-- (see outbox_add.lua), 19 a webhook lock token and 20 its expiry (ms) to deliver it at once ('' when
-- a process of its own delivers webhooks: the instance is made due for it instead),
-- 21 what the outcome says about the number's standing with WhatsApp: 's' sent, 'n' not on
-- WhatsApp, 'f' WhatsApp failed it, '' nothing (a retry, a bad media URL).
-- If that worker no longer owns the instance under that epoch, the new owner has taken the
-- message back (kick.lua) and it is not ours to record: the send, if it happened, is the one
-- possible duplicate that adoption allows, flagged on the message. A message that is no longer
-- the one in flight was recorded already (a retry after a lost answer): nothing happens twice.
-- When too many of the last outcomes were bad, the bulk lane pauses (rules.throttle).
-- Returns 0 when not recorded, else {1 or the webhook head to deliver at once under ARGV 19's
-- lock, the reason of a bulk pause that started now or '', and when it ends (ms)}.
local id, outcome = ARGV[8], ARGV[9]
local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
if owner ~= ARGV[15] or epoch ~= ARGV[16] then return 0 end
if redis.call('HGET', pump, 'inflight') ~= id then return 0 end
local lane = lane_index(redis.call('HGET', pump, 'inflightLane'))
redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
if redis.call('HGET', pace, 'busy') == name then redis.call('HDEL', pace, 'busy') end
local msg = msg_prefix .. id
local exists = redis.call('EXISTS', msg) == 1
local cancelled = exists and redis.call('HGET', msg, F.status) == 'cancelled'
if exists and not cancelled then hset_json(msg, ARGV[10]) end
if lane then count_send(stats, LANES[lane], outcome, msg, now) end
if outcome == 'sent' or outcome == 'failed' then -- it went out, or may have
  local spacing = limits[LANES[lane or 1]].spacing
  local to = exists and redis.call('HGET', msg, F.to)
  if lane and spacing > 0 and to then
    redis.call('ZREMRANGEBYSCORE', spacing_key(lane), '-inf', now - spacing)
    for _, recipient in ipairs(identities(to)) do redis.call('ZADD', spacing_key(lane), now, recipient) end
  end
end
if outcome == 'sent' then
  -- receipts name WhatsApp's id: remember which message it was
  redis.call('SET', ARGV[14], id, 'EX', tonumber(ARGV[13]))
  local gaps = cjson.decode(ARGV[11])
  redis.call('HSET', pace, 'last', now, 'gap:urgent', gaps.urgent, 'gap:normal', gaps.normal, 'gap:bulk', gaps.bulk)
  redis.call('HINCRBY', stats, 'sent', 1)
elseif lane and (outcome ~= 'failed' or not exists) then
  redis.call('ZREM', sent_key(lane), id) -- nothing went out: give the quota back
  redis.call('ZREM', first_key(lane), id)
end
if outcome == 'requeue' and exists and not cancelled and lane then
  redis.call('LPUSH', lane_key(lane), id)
  redis.call('HSET', pump, 'retry:' .. LANES[lane], now + tonumber(ARGV[12]))
elseif exists and not cancelled then
  redis.call('EXPIRE', msg, tonumber(ARGV[13]))
  if outcome ~= 'sent' then
    redis.call('HINCRBY', stats, 'failed', 1)
    count_unsent(stats, redis.call('HGET', msg, F.errorCode))
  end
end
local paused, paused_until = '', 0
local signal, throttle = ARGV[21], rules.throttle
if signal ~= '' and not redis.call('HGET', pump, 'throttledUntil') then
  local key = inst .. ':outcomes'
  redis.call('LPUSH', key, signal)
  redis.call('LTRIM', key, 0, throttle.window - 1)
  local last = redis.call('LRANGE', key, 0, -1)
  if #last >= throttle.window then
    local counts = {s = 0, n = 0, f = 0}
    for _, seen in ipairs(last) do counts[seen] = (counts[seen] or 0) + 1 end
    if counts.n >= throttle.notOnWhatsapp * #last then
      paused = 'not_on_whatsapp'
    elseif counts.n + counts.f >= throttle.failures * #last then
      paused = 'failure_rate'
    end
    if paused ~= '' then
      paused_until = now + throttle.pause
      redis.call('HSET', pump, 'throttledUntil', paused_until, 'throttleReason', paused)
      redis.call('DEL', key) -- after the pause, a fresh window decides
    end
  end
end
local published = 1
if ARGV[17] ~= '' then
  local take = ARGV[19] ~= '' and {ARGV[19], ARGV[20]} or nil -- no token: a deliverer process delivers it
  published = outbox_add(KEYS, name, ARGV[17], ARGV[18], now, take)
end
if type(published) ~= 'table' then published = 1 end
wake_if_open()
return {published, paused, paused_until}
