-- The last step of a send: record the outcome of the in-flight message and schedule the
-- instance's next wake-up in its owner's due-set, publishing the webhook event that says how it
-- ended in the same step (outbox_add.lua).
-- If the worker no longer owns the instance under the epoch it picked the message under, the new
-- owner has taken the message back (kick.lua) and it is not ours to record: the send, if it
-- happened, is the one possible duplicate that adoption allows, flagged on the message. A message
-- that is no longer the one in flight was recorded already (a retry after a lost answer): nothing
-- happens twice. When too many of the last outcomes were bad, the bulk lane pauses (rules.throttle).
-- KEYS: none, or the outbox's (outbox_add.lua `k`) when an event is published
-- ARGV: 1-2 common.lua's (now_ms, instance), 3 id (the message), 4 outcome (sent | failed |
--       failed_uncounted | requeue), 5 fields (JSON of the record's changes), 6 gaps (JSON
--       {lane: ms}, the next gaps; sent only), 7 retry_after (ms to wait before a retry, from
--       now by Redis's clock; requeue only),
--       8 retention (s), 9 wa_key (the key mapping WhatsApp's message id to ours; sent only),
--       10 worker (that sent), 11 epoch (it picked the message under), 12 delivery_id (of the
--       webhook event; '' for none: a requeue), 13 event (its record), 14 lock_token and
--       15 lock_ms (a webhook lock to take to deliver the event at once; '' when a process of its
--       own delivers webhooks: the instance is made due for it instead), 16 signal (what the
--       outcome says about the number's standing: 's' sent, 'n' not on WhatsApp, 'f' WhatsApp
--       failed it, '' nothing: a retry, a bad media URL)
-- returns: 0 when not recorded, else field/value pairs (scheduler/lanes.py Finished): published
--          (1, or the webhook head to deliver at once under the lock: head_with in outbox_add.lua),
--          paused (the reason of a bulk pause that started now, or ''), paused_until (ms, or 0)
local id, outcome, fields, gaps_json = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local retry_after, retention, wa_key = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local worker, picked_epoch = ARGV[10], ARGV[11]
local delivery_id, event, lock_token, lock_ms, signal = ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16]

local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
if owner ~= worker or epoch ~= picked_epoch then return 0 end
if redis.call('HGET', pump, 'inflight') ~= id then return 0 end
local lane = lane_index(redis.call('HGET', pump, 'inflightLane'))
redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
if redis.call('HGET', pace, 'busy') == name then redis.call('HDEL', pace, 'busy') end
local msg = K.message(id)
local exists = redis.call('EXISTS', msg) == 1
local cancelled = exists and redis.call('HGET', msg, F.status) == 'cancelled'
if exists and not cancelled then hset_json(msg, fields) end
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
  redis.call('SET', wa_key, id, 'EX', retention)
  local gaps = cjson.decode(gaps_json)
  redis.call('HSET', pace, 'last', now, 'gap:urgent', gaps.urgent, 'gap:normal', gaps.normal, 'gap:bulk', gaps.bulk)
  redis.call('HINCRBY', stats, 'sent', 1)
elseif lane and (outcome ~= 'failed' or not exists) then
  redis.call('ZREM', sent_key(lane), id) -- nothing went out: give the quota back
  redis.call('ZREM', first_key(lane), id)
end
if outcome == 'requeue' and exists and not cancelled and lane then
  redis.call('LPUSH', lane_key(lane), id)
  redis.call('HSET', pump, 'retry:' .. LANES[lane], now + retry_after)
elseif exists and not cancelled then
  redis.call('EXPIRE', msg, retention)
  if outcome ~= 'sent' then
    redis.call('HINCRBY', stats, 'failed', 1)
    count_unsent(stats, redis.call('HGET', msg, F.errorCode))
  end
end
local paused, paused_until = '', 0
local throttle = rules.throttle
if signal ~= '' and not redis.call('HGET', pump, 'throttledUntil') then
  local key = K.outcomes(name)
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
if delivery_id ~= '' then
  local take = lock_token ~= '' and {lock_token, lock_ms} or nil -- no token: a deliverer process delivers it
  published = outbox_add(KEYS, name, delivery_id, event, now, take)
end
if type(published) ~= 'table' then published = 1 end
wake_if_open()
return {'published', published, 'paused', paused, 'paused_until', paused_until}
