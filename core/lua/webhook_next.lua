-- The delivering worker's step, one per event, in one atomic step: store the delivery just
-- attempted (if any), then return the FIFO head to attempt next with the instance's webhook URL
-- and sealed secret, renewing the lock for the attempt. A deliverer's first step (claim) takes
-- the lock; when another worker holds it, that one will see every event queued meanwhile (it
-- lets go only here, with the FIFO empty, or by handing over with webhook_hand_over.lua).
-- Returns nil (nothing to do, the lock is not held), 'lost' (the lock expired under its holder),
-- or {record, url, sealed secret}.
-- KEYS: 1 lock, 2 FIFO, 3 log, 4 stats hash, 5 instance hash
-- ARGV: 1 lock token, 2 lock expiry (ms), 3 claim ('1' or '0'), 4 delivery key prefix, 5 settled
--       deliveries kept; then, after an attempt: 6 delivery id, 7 its record, 8 '1' when settled,
--       9 ms from publication to delivery ('' unless delivered now), 10... stats fields to count
local lock, fifo, log, stats, inst = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, prefix = ARGV[1], ARGV[4]

-- Drops the oldest settled deliveries (SETTLED in outbox.py) beyond the number kept.
local function trim()
  local excess = redis.call('ZCARD', log) - tonumber(ARGV[5])
  if excess <= 0 then return end
  for _, id in ipairs(redis.call('ZRANGE', log, 0, excess - 1)) do
    local raw = redis.call('GET', prefix .. id)
    local status = raw and cjson.decode(raw).status
    if not raw or status == 'delivered' or status == 'dead' then
      redis.call('ZREM', log, id)
      redis.call('DEL', prefix .. id)
    end
  end
end

local id = ARGV[6]
if id then
  -- XX: the instance may have been deleted during the attempt; its deliveries stay deleted.
  redis.call('SET', prefix .. id, ARGV[7], 'XX')
  for i = 10, #ARGV do redis.call('HINCRBY', stats, ARGV[i], 1) end
  if ARGV[9] ~= '' then observe(stats, 'latency', tonumber(ARGV[9])) end
  if ARGV[8] == '1' then
    redis.call('LREM', fifo, 1, id)
    trim()
  end
end

if ARGV[3] == '1' then
  if not redis.call('SET', lock, token, 'NX', 'PX', ARGV[2]) then return nil end
elseif redis.call('GET', lock) == token then
  redis.call('PEXPIRE', lock, ARGV[2])
else
  return 'lost'
end

local url, sealed = unpack(redis.call('HMGET', inst, 'webhookUrl', 'webhookSecret'))
while url do -- no URL: the instance is deleted, its outbox with it
  local head = redis.call('LINDEX', fifo, 0)
  if not head then break end
  local raw = redis.call('GET', prefix .. head)
  if raw then return {raw, url, sealed} end
  -- Its record was trimmed while a replay queued it again: nothing is left to send.
  redis.call('LREM', fifo, 1, head)
end
redis.call('DEL', lock)
return nil
