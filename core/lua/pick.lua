-- The pump's first step: take the next message to send, or decide when to look again.
-- ARGV 7 token of this wake-up, 8 longest wait (ms) before a message expires, 9 retention (s),
-- 10 JSON fields of an expired message.
-- Returns {'fenced'} | {'stale'} | {'closed'} | {'idle', expired...} | {'wait', at, expired...} |
-- {'send', expired ids JSON, the message record's fields and values...}
-- 11 the worker running this pump and 12 the epoch it owns the instance under: only the owner,
-- under the same epoch as when this pump started, may send for it (fencing).
local owner, epoch = unpack(redis.call('HMGET', inst, 'owner', 'epoch'))
if owner ~= ARGV[11] or epoch ~= ARGV[12] then return {'fenced'} end
if redis.call('HGET', pump, 'token') ~= ARGV[7] then return {'stale'} end
if redis.call('HGET', inst, 'state') ~= 'open' then
  redis.call('HDEL', pump, 'due')
  return {'closed'}
end
local max_wait, retention = tonumber(ARGV[8]), tonumber(ARGV[9])
local expired = {}
while true do
  local lane, at, wake_at = next_send()
  if lane == nil or at > now then
    redis.call('HDEL', pump, 'due')
    if wake_at == nil then return {'idle', unpack(expired)} end
    wake(wake_at)
    return {'wait', tostring(wake_at), unpack(expired)}
  end
  local id = redis.call('LPOP', lane_key(lane))
  local msg = msg_prefix .. id
  if redis.call('EXISTS', msg) == 1 then
    local created = tonumber(redis.call('HGET', msg, 'createdMs'))
    if now - created > max_wait then
      hset_json(msg, ARGV[10])
      redis.call('EXPIRE', msg, retention)
      redis.call('HINCRBY', stats, 'failed', 1)
      count_send(stats, LANES[lane], 'expired', msg, now)
      table.insert(expired, id)
    else
      redis.call('ZADD', sent_key(lane), now, id)
      redis.call('HSET', pump, 'due', 0, 'inflight', id, 'inflightLane', LANES[lane])
      -- eligibleMs: when the lanes first allowed this message to go (for lateness figures)
      redis.call('HSET', msg, 'status', 'sending', 'eligibleMs', math.max(at, created))
      return {'send', cjson.encode(expired), unpack(redis.call('HGETALL', msg))}
    end
  end
end
