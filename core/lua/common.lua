-- Shared by every lane script (prepended to each). Redis runs a script atomically, so nothing
-- here can interleave with another sender, the pump or a flush.
-- KEYS: 1 instance hash, 2 pump hash, 3-5 lane lists (urgent, normal, bulk), 6-8 sent-time zsets
-- ARGV: 1 now (ms), 2 instance name, 3 worker queue prefix, 4 message key prefix, 5 limits JSON,
--       6 stats hash key; script arguments follow from 7.
local LANES = {'urgent', 'normal', 'bulk'}
local HOUR, DAY = 3600000, 86400000
local inst, pump = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local name = ARGV[2]
local queue_prefix, msg_prefix = ARGV[3], ARGV[4]
local limits = cjson.decode(ARGV[5])
local stats = ARGV[6]

local function lane_key(i) return KEYS[2 + i] end
local function sent_key(i) return KEYS[5 + i] end
local function lane_index(lane)
  for i = 1, 3 do if LANES[i] == lane then return i end end
end

-- When lane i's rolling hourly and daily quotas have room again (`now` if they have room now).
local function quota_free_at(i)
  local key, limit = sent_key(i), limits[LANES[i]]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - DAY)
  local at = now
  local day = redis.call('ZCARD', key)
  if day >= limit.perDay then
    local oldest = redis.call('ZRANGE', key, day - limit.perDay, day - limit.perDay, 'WITHSCORES')
    at = math.max(at, tonumber(oldest[2]) + DAY)
  end
  local hour = redis.call('ZCOUNT', key, '(' .. (now - HOUR), '+inf')
  if hour >= limit.perHour then
    local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - HOUR), '+inf', 'WITHSCORES', 'LIMIT',
      hour - limit.perHour, 1)
    at = math.max(at, tonumber(oldest[2]) + HOUR)
  end
  return at
end

-- The lane to send from next, when it may send, and when the pump should wake up.
-- Urgent goes before normal before bulk; a lane whose quota is spent waits without blocking the
-- lanes below it. Returns nil, nil, nil when every lane is empty.
local function next_send()
  local last = tonumber(redis.call('HGET', pump, 'last') or '0')
  local wake_at = nil
  for i = 1, 3 do
    if redis.call('LLEN', lane_key(i)) > 0 then
      local free = quota_free_at(i)
      if free > now then
        if wake_at == nil or free < wake_at then wake_at = free end
      else
        local at = last + tonumber(redis.call('HGET', pump, 'gap:' .. LANES[i]) or '0')
        at = math.max(at, tonumber(redis.call('HGET', pump, 'retry:' .. LANES[i]) or '0'))
        if wake_at == nil or at < wake_at then wake_at = at end
        return i, at, wake_at
      end
    end
  end
  return nil, nil, wake_at
end

-- Schedule the instance's pump at `at` on its owner's arq queue, unless an earlier wake-up (or a
-- running pump, due 0) already covers it. Each wake-up carries a new token; a superseded one
-- finds the token changed and does nothing. The job is written as arq 0.28's enqueue_job writes
-- it (JSON serializer), so accepting a message and waking its pump is one atomic step.
local function wake(at)
  at = math.max(at, now)
  local due = redis.call('HGET', pump, 'due')
  if due and tonumber(due) <= at then return end
  local owner = redis.call('HGET', inst, 'owner')
  if not owner then return end -- no worker yet: adoption wakes the instance
  local token = redis.call('HINCRBY', pump, 'token', 1)
  redis.call('HSET', pump, 'due', at)
  local job_id = 'pump:' .. name .. ':' .. token
  local job = cjson.encode({t = cjson.null, f = 'pump', a = {name, token}, k = {}, et = now})
  redis.call('SET', 'arq:job:' .. job_id, job, 'PX', at - now + DAY)
  redis.call('ZADD', queue_prefix .. owner, at, job_id)
end

local function wake_if_open()
  if redis.call('HGET', inst, 'state') ~= 'open' then return end
  local _, _, at = next_send()
  if at then wake(at) end
end

-- Take the pump back from a worker that died or lost it: a message it had in flight goes back to
-- the head of its lane, marked as possibly sent, and its scheduled wake-up is forgotten.
-- Returns the re-queued id or false.
local function reset_pump()
  local requeued = false
  local inflight = redis.call('HGET', pump, 'inflight')
  local lane = lane_index(redis.call('HGET', pump, 'inflightLane') or '')
  if inflight and lane then
    local msg = msg_prefix .. inflight
    if redis.call('EXISTS', msg) == 1 and redis.call('HGET', msg, 'status') == 'sending' then
      redis.call('HSET', msg, 'status', 'pending', 'possiblyDuplicated', '1')
      redis.call('ZREM', sent_key(lane), inflight)
      redis.call('LPUSH', lane_key(lane), inflight)
      requeued = inflight
    end
  end
  redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
  return requeued
end
