-- Message record fields are named through `F`, generated from scheduler/messages.py (lua_fields).
-- Shared by every lane script (prepended to each). Redis runs a script atomically, so nothing
-- here can interleave with another sender, the claim loop or a flush.
-- ARGV: 1 now (ms), 2 instance name, 3 instance key prefix, 4 due-set key prefix, 5 message key
--       prefix, 6 limits JSON, 7 stats hash key; script arguments follow from 8.
-- An instance's keys are built from its name as core/keys.py builds them (`bind`), so one script
-- can work on many instances (claim_due.lua). They are not declared in KEYS: this needs a single
-- Redis, not a cluster, as message keys built here always did.
local LANES = {'urgent', 'normal', 'bulk'}
local HOUR, DAY = 3600000, 86400000
local now = tonumber(ARGV[1])
local inst_prefix, due_prefix, msg_prefix = ARGV[3], ARGV[4], ARGV[5]
local limits = cjson.decode(ARGV[6])
local stats = ARGV[7]
local name, inst, pump

-- Point the functions below at instance `n`.
local function bind(n)
  name, inst = n, inst_prefix .. n
  pump = inst .. ':pump'
end
bind(ARGV[2])

local function lane_key(i) return inst .. ':lane:' .. LANES[i] end
local function sent_key(i) return inst .. ':sent:' .. LANES[i] end
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

-- The lane to send from next, when it may send, and when the instance should wake up.
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

-- Schedule the instance's wake-up at `at` in its owner's due-set, unless an earlier one (or a
-- send in flight, due 0) already covers it. The pump hash's `due` and the due-set's score are
-- written together, here only: they cannot disagree. When the new wake-up comes before every
-- other one of that worker, its bell rings, so a claim loop sleeping until later looks now.
local function wake(at)
  at = math.max(at, now)
  local due = redis.call('HGET', pump, 'due')
  if due and tonumber(due) <= at then return end
  local owner = redis.call('HGET', inst, 'owner')
  if not owner then return end -- no worker yet: adoption wakes the instance
  local set = due_prefix .. owner
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')[2]
  redis.call('HSET', pump, 'due', at)
  redis.call('ZADD', set, at, name)
  if not first or at < tonumber(first) then redis.call('RPUSH', set .. ':bell', 1) end
end

local function wake_if_open()
  if redis.call('HGET', inst, 'state') ~= 'open' then return end
  local _, _, at = next_send()
  if at then wake(at) end
end

-- Take the message in flight back to the head of its lane, `possiblyDuplicated` when it may have
-- gone out (a dead or departed owner's send), and forget the scheduled wake-up.
-- Returns the re-queued id or false.
local function reset_pump(possibly_sent)
  local requeued = false
  local inflight = redis.call('HGET', pump, 'inflight')
  local lane = lane_index(redis.call('HGET', pump, 'inflightLane') or '')
  if inflight and lane then
    local msg = msg_prefix .. inflight
    if redis.call('EXISTS', msg) == 1 and redis.call('HGET', msg, F.status) == 'sending' then
      redis.call('HSET', msg, F.status, 'pending')
      if possibly_sent then redis.call('HSET', msg, F.possiblyDuplicated, '1') end
      redis.call('ZREM', sent_key(lane), inflight)
      redis.call('LPUSH', lane_key(lane), inflight)
      requeued = inflight
    end
  end
  redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
  return requeued
end
