-- The lanes' shared state and rules, prepended to every lane script (after RULES, the lanes' rules
-- as a Lua table, K, the key helpers of core/keys.py, and F, the message record's fields of
-- scheduler/messages.py). Redis runs a script
-- atomically, so nothing here can interleave with another sender, the claim loop or a flush.
-- An instance's keys are built from its name with K (`bind`), so one script can work on many
-- instances (claim_due.lua). They are not declared in KEYS: this needs a single Redis, not a
-- cluster, as message keys built here always did.
-- KEYS: none (a lane script's own KEYS follow from 1)
-- ARGV: 1 now_ms ('' for Redis's own clock), 2 instance (its name); a lane script's own ARGV
--       follow from 3. The rules (scheduler/lanes.py `rules`: each lane's limits, the day's length,
--       the trouble thresholds, the queue limit) are in its source, as RULES: a table built from
--       Lua's own constants costs Redis a tenth of decoding them from JSON at every call.
-- returns: nothing; defines bind, next_send, wake, wake_if_open, reset_pump and the rules' helpers
local LANES = {'urgent', 'normal', 'bulk'}
local HOUR = 3600000
local now_ms, instance = ARGV[1], ARGV[2]
local now = tonumber(now_ms)
if now_ms == '' then -- run after a wait in the same pipeline (scheduler/lanes.py claim_due): now is when it ended
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local rules = RULES
local limits, DAY = rules.lanes, rules.day
local stats = K.STATS
local name, inst, pump, pace, phone
-- A linked phone may send again this long after one of its instances picked a message, while that
-- send is still in flight (another instance on the same phone waits for it).
local PHONE_BUSY_POLL = 200

-- Point the functions below at instance `n`. Its pace (last send, drawn gaps, quota windows) is
-- its linked phone's, shared by every instance on that phone and kept when one is deleted; an
-- instance never linked paces itself.
local function bind(n)
  name, inst, pump = n, K.instance(n), K.pump(n)
  phone = redis.call('HGET', inst, 'phoneNumber')
  pace = phone and K.phone(phone) or pump
end
bind(instance)

local function lane_key(i) return K.lane(name, LANES[i]) end
local function sent_key(i) return phone and K.phone_sent(phone, LANES[i]) or K.sent_times(name, LANES[i]) end
local function first_key(i) return K.first_contacts(name, LANES[i]) end
local function spacing_key(i) return K.spacing(name, LANES[i]) end
local function contacts_key() return K.contacts(name) end
local function lane_index(lane)
  for i = 1, 3 do if LANES[i] == lane then return i end end
end

-- Whether the bound instance's setting `deliverability` is "cautious" (core/instance_settings.py):
-- only then do the warm-up schedule, first-contact limits and per-recipient spacing hold its
-- messages. Memoised per instance for the script's run.
local cautious_of = {}
local function cautious()
  if cautious_of[name] == nil then
    local stored = redis.call('HGET', inst, 'settings')
    cautious_of[name] = stored and cjson.decode(stored).deliverability == 'cautious' or false
  end
  return cautious_of[name]
end

-- Lane i's warm-up factor for the bound instance today (an admin's override, else, for a cautious
-- instance, the lane's schedule by days since the first link), and when it next changes (nil: it
-- no longer does).
local function warmup(i)
  local override, linked = unpack(redis.call('HMGET', inst, 'warmup', 'firstLinkedMs'))
  if override then return tonumber(override), nil end
  if not cautious() then return 1, nil end
  local schedule = limits[LANES[i]].warmup
  linked = tonumber(linked or now)
  local day = math.max(0, math.floor((now - linked) / DAY))
  if day + 1 >= #schedule then return schedule[#schedule], nil end
  return schedule[day + 1], linked + (day + 1) * DAY
end

-- When lane i's rolling hourly and daily quotas, scaled by its warm-up factor, have room again
-- (`now` if they have room now), and why not before (waiting.lua): 'daily_quota', 'hourly_quota',
-- or 'warmup' when only the factor keeps the quota spent (nil when it has room now).
local function quota_free_at(i)
  local key, limit = sent_key(i), limits[LANES[i]]
  local factor, grows_at = warmup(i)
  local per_day = math.max(1, math.floor(limit.perDay * factor))
  local per_hour = math.max(1, math.floor(limit.perHour * factor))
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - DAY)
  local at, why = now, nil
  local day = redis.call('ZCARD', key)
  if day >= per_day then
    local oldest = redis.call('ZRANGE', key, day - per_day, day - per_day, 'WITHSCORES')
    at = math.max(at, tonumber(oldest[2]) + DAY)
    why = day >= limit.perDay and 'daily_quota' or 'warmup'
  end
  local hour = redis.call('ZCOUNT', key, '(' .. (now - HOUR), '+inf')
  if hour >= per_hour then
    local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - HOUR), '+inf', 'WITHSCORES', 'LIMIT',
      hour - per_hour, 1)
    local free = tonumber(oldest[2]) + HOUR
    if free > at then at, why = free, hour >= limit.perHour and 'hourly_quota' or 'warmup' end
  end
  if grows_at and at > grows_at then at, why = grows_at, 'warmup' end -- tomorrow's quota may have room
  return at, why
end

-- What the per-person rules may know the recipient `to` of the bound instance under: `to` as
-- typed, and the account the tenant's number cache (scheduler/numbers.py) resolved it to: its
-- number and its LID chat (`<lid>@lid`). Whatever spelling a send or a STOP used, they meet here.
local function identities(to)
  local found = {to}
  local tenant = string.match(name, '^(.-)__')
  local raw = tenant and redis.call('GET', K.on_whatsapp(tenant, to))
  if raw and string.sub(raw, 1, 1) == '{' then
    local account = cjson.decode(raw)
    if type(account.number) == 'string' and account.number ~= to then table.insert(found, account.number) end
    if type(account.lid) == 'string' and account.lid .. '@lid' ~= to then table.insert(found, account.lid .. '@lid') end
  end
  return found
end

-- Whether a message of lane i from `tenant` to `to` must not go: the tenant's opt-out list has
-- the recipient (any of its identities), and it is not a transactional message of the urgent lane.
local function opted_out(i, tenant, to, transactional)
  if LANES[i] == 'urgent' and transactional == '1' then return false end
  for _, id in ipairs(identities(to)) do
    if redis.call('HEXISTS', K.suppressions(tenant), id) == 1 then return true end
  end
  return false
end

-- Whether `to` is a group id rather than a phone number.
local function is_group(to)
  return string.sub(to, -5) == '@g.us'
end

-- Whether `to` never wrote to the bound instance, when lane i limits such first contacts. A group
-- never counts as one: the number is a member, so its people chose to hear from it, and the rule
-- guards against cold messages to strangers. (The opt-out list holds phone numbers only, so it
-- never names a group either: a member opts out by leaving.)
local function first_contact(i, to)
  if limits[LANES[i]].firstContactPerDay < 0 or not cautious() or is_group(to) then return false end
  for _, id in ipairs(identities(to)) do
    if redis.call('SISMEMBER', contacts_key(), id) == 1 then return false end
  end
  return true
end

-- When message `id` of lane i may go by its recipient's rules (`now` if it may now): the least
-- time since this lane's last send to the same recipient, and the lane's daily first contacts;
-- and which of them holds it ('spacing' or 'first_contact'; nil when none does, waiting.lua).
-- An opted-out message may "go" at once: picking it ends it.
local function recipient_free_at(i, id)
  local rule = limits[LANES[i]]
  if not cautious() or (rule.spacing == 0 and rule.firstContactPerDay < 0) then return now end
  local to, tenant, transactional = unpack(redis.call('HMGET', K.message(id), F.to, F.tenantId, F.transactional))
  if not to or opted_out(i, tenant, to, transactional) then return now end
  local at, why = now, nil
  if rule.spacing > 0 then
    for _, id in ipairs(identities(to)) do
      local last = redis.call('ZSCORE', spacing_key(i), id)
      if last and tonumber(last) + rule.spacing > at then at, why = tonumber(last) + rule.spacing, 'spacing' end
    end
  end
  if first_contact(i, to) then
    local key, limit = first_key(i), rule.firstContactPerDay
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - DAY)
    local count = redis.call('ZCARD', key)
    local free = now
    if limit == 0 then
      free = now + DAY
    elseif count >= limit then
      local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      free = tonumber(oldest[2]) + DAY
    end
    if free > at then at, why = free, 'first_contact' end
  end
  return at, why
end

-- How many messages of a lane are looked at, at most, for one that may go now.
local SCAN = 50

-- When lane i has a message that may go by its recipient's rules; that message is then at the
-- head. Messages held back on the way move to the back of the lane, so one recipient's wait
-- does not hold up the others.
local function head_free_at(i)
  local key = lane_key(i)
  local length = redis.call('LLEN', key)
  local soonest = nil
  for _ = 1, math.min(length, SCAN) do
    local at = recipient_free_at(i, redis.call('LINDEX', key, 0))
    if at <= now then return now end
    if soonest == nil or at < soonest then soonest = at end
    redis.call('RPUSH', key, redis.call('LPOP', key))
  end
  if length > SCAN then return math.min(soonest, now + 1000) end -- look at the next ones soon
  return soonest
end

-- When lane i may send: its quotas, the bulk lane's pause after trouble, then its head message.
local function lane_free_at(i)
  local at = quota_free_at(i)
  if LANES[i] == 'bulk' then
    at = math.max(at, tonumber(redis.call('HGET', pump, 'throttledUntil') or '0'))
  end
  if at > now then return at end
  return head_free_at(i)
end

-- The lane to send from next, when its head message may be picked, and when the instance should
-- wake up.
-- Urgent goes before normal before bulk; a lane whose quota is spent (or whose messages wait for
-- their recipients' rules) waits without blocking the lanes below it. Returns nil, nil and the
-- next wake-up (nil when nothing needs one) when no lane has a message that may go now.
local function next_send()
  local last = tonumber(redis.call('HGET', pace, 'last') or '0')
  local busy = redis.call('HGET', pace, 'busy')
  if busy and busy ~= name and redis.call('HEXISTS', K.pump(busy), 'inflight') == 1 then
    last = math.max(last, now + PHONE_BUSY_POLL) -- another instance on the phone is sending: after it
  end
  local wake_at = nil
  for i = 1, 3 do
    if redis.call('LLEN', lane_key(i)) > 0 then
      local free = lane_free_at(i)
      if free > now then
        if wake_at == nil or free < wake_at then wake_at = free end
      else
        -- "typing..." is shown within the gap, not after it: the head message is picked that much
        -- earlier, and the pump shows it before sending, so the send still never precedes the gap.
        local typing = tonumber(redis.call('HGET', K.message(redis.call('LINDEX', lane_key(i), 0)), F.typingMs) or '0')
        local at = last + tonumber(redis.call('HGET', pace, 'gap:' .. LANES[i]) or '0') - typing
        at = math.max(at, tonumber(redis.call('HGET', pump, 'retry:' .. LANES[i]) or '0'))
        if wake_at == nil or at < wake_at then wake_at = at end
        return i, at, wake_at
      end
    end
  end
  -- a paused bulk lane resumes at its time even when empty: the claim then says so (unthrottled)
  local paused = tonumber(redis.call('HGET', pump, 'throttledUntil') or '0')
  if paused > now and (wake_at == nil or paused < wake_at) then wake_at = paused end
  return nil, nil, wake_at
end

-- Schedule the instance's wake-up at `at` in its owner's due-set, unless an earlier one (or a
-- send in flight, due 0) already covers it. The pump hash's `due` and the due-set's score are
-- written together, here only: they cannot disagree. When the new wake-up comes before every
-- other one of that worker, its bell rings, so a claim loop sleeping until later looks now.
local function wake(at, due)
  at = math.max(at, now)
  if due == nil then due = redis.call('HGET', pump, 'due') end -- a caller that read it passes it (false: none)
  if due and tonumber(due) <= at then return end
  local owner = redis.call('HGET', inst, 'owner')
  if not owner then return end -- no worker yet: adoption wakes the instance
  local set = K.due(owner)
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')[2]
  redis.call('HSET', pump, 'due', at)
  redis.call('ZADD', set, at, name)
  if not first or at < tonumber(first) then redis.call('RPUSH', K.due_bell(owner), 1) end
end

-- Schedule the bound instance's next wake-up, if it is open. A wake-up due by now already (0: a
-- send in flight, whose finish schedules the next one) covers whatever next_send would find: a
-- message accepted for a busy number costs no look at its lanes.
local function wake_if_open()
  local due = redis.call('HGET', pump, 'due')
  if due and tonumber(due) <= now then return end
  if redis.call('HGET', inst, 'state') ~= 'open' then return end
  local _, _, at = next_send()
  if at then wake(at, due) end
end

-- Take the message in flight back to the head of its lane, `possiblyDuplicated` when it may have
-- gone out (a dead or departed owner's send), and forget the scheduled wake-up.
-- Returns the re-queued id or false.
local function reset_pump(possibly_sent)
  local requeued = false
  local inflight = redis.call('HGET', pump, 'inflight')
  local lane = lane_index(redis.call('HGET', pump, 'inflightLane') or '')
  if inflight and lane then
    local msg = K.message(inflight)
    if redis.call('EXISTS', msg) == 1 and redis.call('HGET', msg, F.status) == 'sending' then
      redis.call('HSET', msg, F.status, 'pending')
      if possibly_sent then redis.call('HSET', msg, F.possiblyDuplicated, '1') end
      redis.call('ZREM', sent_key(lane), inflight)
      redis.call('ZREM', first_key(lane), inflight)
      redis.call('LPUSH', lane_key(lane), inflight)
      requeued = inflight
    end
  end
  redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
  if redis.call('HGET', pace, 'busy') == name then redis.call('HDEL', pace, 'busy') end
  return requeued
end
