-- The claim loop's step: take every instance of this worker whose wake-up is due (at most ARGV 9),
-- and for each pick the next message its lanes allow, marking it `sending`; an instance with
-- nothing to send yet goes back in the due-set for when it will have. Clears the worker's bell.
-- ARGV 8 the worker, 9 how many instances to take at most, 10 longest wait (ms) before a message
-- expires, 11 retention (s), 12 JSON fields of an expired message.
-- Only the owner may send for an instance: an entry of an instance this worker no longer owns is
-- dropped, and each send carries the epoch it was picked under, which finish.lua checks (fencing).
-- An instance with a send in flight (due 0) is never taken: one send in flight per number.
-- Returns {next wake-up ms or '', then per instance taken with something to report:
-- name, epoch, expired ids JSON, message fields JSON ('' when nothing is sent now)}.
local worker, room = ARGV[8], tonumber(ARGV[9])
local max_wait, retention, expired_fields = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]
local set = due_prefix .. worker

-- The next message of the bound instance: its fields (already `sending`) or nil, and the ids of
-- messages found expired on the way (ended failed).
local function pick()
  local expired = {}
  while true do
    local lane, at, wake_at = next_send()
    if lane == nil or at > now then
      redis.call('HDEL', pump, 'due')
      if wake_at then wake(wake_at) end
      return nil, expired
    end
    local id = redis.call('LPOP', lane_key(lane))
    local msg = msg_prefix .. id
    if redis.call('EXISTS', msg) == 1 then
      local created = tonumber(redis.call('HGET', msg, F.createdMs))
      if now - created > max_wait then
        hset_json(msg, expired_fields)
        redis.call('EXPIRE', msg, retention)
        redis.call('HINCRBY', stats, 'failed', 1)
        count_send(stats, LANES[lane], 'expired', msg, now)
        table.insert(expired, id)
      else
        redis.call('ZADD', sent_key(lane), now, id)
        redis.call('HSET', pump, 'due', 0, 'inflight', id, 'inflightLane', LANES[lane])
        -- eligibleMs: when the lanes first allowed this message to go (for lateness figures)
        redis.call('HSET', msg, F.status, 'sending', F.eligibleMs, math.max(at, created))
        local fields = {}
        local flat = redis.call('HGETALL', msg)
        for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
        return fields, expired
      end
    end
  end
end

local taken = {}
for _, n in ipairs(redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, room)) do
  redis.call('ZREM', set, n)
  bind(n)
  local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
  if owner == worker and redis.call('HGET', pump, 'due') ~= '0' then
    if redis.call('HGET', inst, 'state') ~= 'open' then
      redis.call('HDEL', pump, 'due') -- opening wakes it again (kick.lua)
    else
      local fields, expired = pick()
      if fields or #expired > 0 then
        table.insert(taken, n)
        table.insert(taken, epoch)
        table.insert(taken, #expired > 0 and cjson.encode(expired) or '[]')
        table.insert(taken, fields and cjson.encode(fields) or '')
      end
    end
  end
end
redis.call('DEL', set .. ':bell') -- last: wake-ups added above need no second look
local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')[2]
table.insert(taken, 1, first or '')
return taken
