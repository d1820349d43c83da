-- The outbox's Lua scripts. Each is one atomic step and one round trip, so publishing, claiming
-- an instance, settling an attempt and letting go can never see each other half-done.
--
-- The job-pending flag (`keys.webhook_wake`) is what keeps wake-ups from being lost while most
-- events queue no job at all. It is set while someone still has to look at the instance's FIFO:
-- a queued delivery job (publishing queues one only when the flag is not set), or the lock holder
-- (a job that finds the lock taken sets it). A job clears it as it takes the lock. The holder lets
-- go either with the FIFO empty, which answers every request (the flag is cleared), or with events
-- left: then it queues the job it needs (the head's retry, or a fresh one when out of time) and,
-- if the flag is set, one for now as well.
--
-- The delivering worker's step, one per event: store the delivery just attempted (if any), then
-- return the FIFO head to attempt next with the instance's webhook URL and sealed secret,
-- renewing the lock for the attempt. A job's first step (claim) clears the job-pending flag and
-- takes the lock, or sets the flag for the holder when the lock is taken. With nothing left to
-- deliver it lets go of the lock and clears the flag.
-- Returns nil (nothing to do, the lock is not held), 'lost' (the lock expired under its holder),
-- or {record, url, sealed secret}.
-- KEYS: 1 lock, 2 job-pending flag, 3 FIFO, 4 log, 5 stats hash, 6 instance hash
-- ARGV: 1 lock token, 2 lock expiry (ms), 3 claim ('1' or '0'), 4 flag expiry (s), 5 delivery key
--       prefix, 6 settled deliveries kept; then, after an attempt: 7 delivery id, 8 its record,
--       9 '1' when settled, 10 ms from publication to delivery ('' unless delivered now),
--       11... stats fields to count
local lock, flag, fifo, log, stats, inst = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local token, prefix = ARGV[1], ARGV[5]

-- Drops the oldest settled deliveries (SETTLED in outbox.py) beyond the number kept.
local function trim()
  local excess = redis.call('ZCARD', log) - tonumber(ARGV[6])
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

local id = ARGV[7]
if id then
  -- XX: the instance may have been deleted during the attempt; its deliveries stay deleted.
  redis.call('SET', prefix .. id, ARGV[8], 'XX')
  for i = 11, #ARGV do redis.call('HINCRBY', stats, ARGV[i], 1) end
  if ARGV[10] ~= '' then observe(stats, 'latency', tonumber(ARGV[10])) end
  if ARGV[9] == '1' then
    redis.call('LREM', fifo, 1, id)
    trim()
  end
end

if ARGV[3] == '1' then
  if not redis.call('SET', lock, token, 'NX', 'PX', ARGV[2]) then
    redis.call('SET', flag, '1', 'EX', ARGV[4])
    return nil
  end
  redis.call('DEL', flag)
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
redis.call('DEL', lock, flag)
return nil
