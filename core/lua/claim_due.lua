-- The claim loop's step: take every instance of this worker whose wake-up is due (at most
-- `room`), and for each pick the next message its lanes allow, marking it `sending`; an instance
-- with nothing to send yet goes back in the due-set for when it will have. Clears the worker's bell.
-- Only the owner may send for an instance: an entry of an instance this worker no longer owns is
-- dropped, and each send carries the epoch it was picked under, which finish.lua checks (fencing).
-- An instance with a send in flight (due 0) is never taken: one send in flight per number.
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance: '' here), 3 worker, 4 room (instances to take at
--       most), 5 max_wait (ms before a message expires), 6 retention (s), 7 expired_fields (JSON
--       of an expired message), 8 opted_out_fields (JSON of a message to an opted-out recipient)
-- returns: {next wake-up ms left in the due-set or '', then per instance taken with something to
--          report, field/value pairs (scheduler/lanes.py Taken): name, epoch, ended (JSON ids
--          ended unsent: expired or opted out), message (JSON fields, already `sending`; '' when
--          nothing is sent now), resumed (the reason of a bulk pause that ended now, or ''), known
--          (what the number cache, scheduler/numbers.py, knows of the recipient: its account, ''
--          for not on WhatsApp, '?' when it does not know, so the send asks no second round trip)}
local worker, room, max_wait, retention = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local expired_fields, opted_out_fields = ARGV[7], ARGV[8]

local set = K.due(worker)
-- Messages ended unsent (expired, opted out) in one call, at most, over all instances: a backlog of
-- 100,000 stale messages ends in chunks, so no call holds Redis for long. An instance cut short is
-- left unscheduled; the pump wakes it (kick.lua) once it has published this chunk's events, so
-- chunks never pile up faster than they are reported (the sweep repairs a lost wake-up).
local ending_room = 100

local function end_unsent(msg, fields)
  hset_json(msg, fields)
  redis.call('EXPIRE', msg, retention)
  redis.call('HINCRBY', stats, 'failed', 1)
  count_unsent(stats, redis.call('HGET', msg, F.errorCode))
end

-- End the run of expired messages now at the head of lane i (its oldest first), up to the room
-- left: once next_send has chosen the lane, the messages behind an expired head are looked at
-- here alone (about 10 commands each), not through next_send again (about 30 each, most of a
-- chunk's time when 100,000 stale messages end). Expiring needs nothing of what next_send judges.
local function end_expired_run(i, ended)
  local key = lane_key(i)
  while ending_room > 0 do
    local id = redis.call('LINDEX', key, 0)
    if not id then return end
    local msg = K.message(id)
    local created = tonumber(redis.call('HGET', msg, F.createdMs))
    if created and now - created <= max_wait then return end
    redis.call('LPOP', key)
    if created then
      end_unsent(msg, expired_fields)
      count_send(stats, LANES[i], 'expired', msg, now)
      table.insert(ended, id)
      ending_room = ending_room - 1
    end
  end
end

-- The next message of the bound instance: its fields (already `sending`) or nil, and the ids of
-- messages ended on the way (expired, or to an opted-out recipient).
local function pick()
  local ended = {}
  while true do
    if ending_room <= 0 then -- the rest once the pump has reported these
      redis.call('HDEL', pump, 'due')
      return nil, ended
    end
    local lane, at, wake_at = next_send()
    if lane == nil or at > now then
      redis.call('HDEL', pump, 'due')
      if wake_at then wake(wake_at) end
      return nil, ended
    end
    local id = redis.call('LPOP', lane_key(lane))
    local msg = K.message(id)
    if redis.call('EXISTS', msg) == 1 then
      local created, to, tenant, transactional =
        unpack(redis.call('HMGET', msg, F.createdMs, F.to, F.tenantId, F.transactional))
      created = tonumber(created)
      if now - created > max_wait then
        end_unsent(msg, expired_fields)
        count_send(stats, LANES[lane], 'expired', msg, now)
        table.insert(ended, id)
        ending_room = ending_room - 1
        end_expired_run(lane, ended)
      elseif opted_out(lane, tenant, to, transactional) then
        end_unsent(msg, opted_out_fields)
        table.insert(ended, id)
        ending_room = ending_room - 1
      else
        redis.call('ZADD', sent_key(lane), now, id)
        redis.call('PEXPIRE', sent_key(lane), DAY)
        if first_contact(lane, to) then redis.call('ZADD', first_key(lane), now, id) end
        redis.call('HSET', pump, 'due', 0, 'inflight', id, 'inflightLane', LANES[lane])
        if pace ~= pump then redis.call('HSET', pace, 'busy', name) end -- the phone's one send in flight
        -- eligibleMs: when the lanes first allowed this message to go (for lateness figures)
        redis.call('HSET', msg, F.status, 'sending', F.eligibleMs, math.max(at, created))
        local fields = {}
        local flat = redis.call('HGETALL', msg)
        for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
        local known = tenant and redis.call('GET', K.on_whatsapp(tenant, to))
        return fields, ended, known or '?'
      end
    end
  end
end

-- A bulk pause whose time is over ends here; returns its reason ('' when none ended).
local function pause_over()
  local paused, reason = unpack(redis.call('HMGET', pump, 'throttledUntil', 'throttleReason'))
  if not paused or tonumber(paused) > now then return '' end
  redis.call('HDEL', pump, 'throttledUntil', 'throttleReason')
  return reason or 'unknown'
end

local taken = {}
for _, n in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, room)) do
  redis.call('ZREM', set, n)
  bind(n)
  local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
  if owner == worker and redis.call('HGET', pump, 'due') ~= '0' then
    local resumed = pause_over()
    local fields, ended, known = nil, {}, '?'
    if redis.call('HGET', inst, 'state') ~= 'open' then
      redis.call('HDEL', pump, 'due') -- opening wakes it again (kick.lua)
    else
      fields, ended, known = pick()
    end
    if fields or #ended > 0 or resumed ~= '' then
      table.insert(taken, {'name', n, 'epoch', epoch, 'ended', #ended > 0 and cjson.encode(ended) or '[]',
        'message', fields and cjson.encode(fields) or '', 'resumed', resumed, 'known', known or '?'})
    end
  end
end
redis.call('DEL', K.due_bell(worker)) -- last: wake-ups added above need no second look
local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')[2]
table.insert(taken, 1, first or '')
return taken
