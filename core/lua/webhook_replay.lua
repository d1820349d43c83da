-- Queue dead letters again, oldest first, behind the instance's held deliveries, with a fresh
-- retry schedule and the same delivery ids: one bounded step of a bulk replay (outbox.py), up to
-- ARGV 5 dead letters published after number ARGV 1, those created within [ARGV 2, ARGV 3]
-- (ISO 8601 in UTC, '' for open) taken, the others left. A dead letter whose record expired is
-- forgotten.
-- KEYS: 1 dead letters, 2 FIFO, 3 instance hash.
-- ARGV: 1 publication number to go on after, 2 since, 3 until, 4 delivery key prefix, 5 how many
--       at most, 6 seconds a held record lives
-- Returns {how many were queued, the publication number to go on after, or '' when done}.
local dead, fifo = KEYS[1], KEYS[2]
local since, till, prefix, count = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if redis.call('HEXISTS', KEYS[3], 'createdAt') == 0 then return {0, ''} end
local found = redis.call('ZRANGEBYSCORE', dead, '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, count)
local replayed = 0
for i = 1, #found, 2 do
  local id = found[i]
  local raw = redis.call('GET', prefix .. id)
  local delivery = raw and cjson.decode(raw)
  if not delivery then
    redis.call('ZREM', dead, id)
  elseif (since == '' or delivery.createdAt >= since) and (till == '' or delivery.createdAt <= till) then
    delivery.status, delivery.tries = 'pending', 0
    delivery.nextAttemptAt, delivery.deliveredAt = cjson.null, cjson.null
    redis.call('SET', prefix .. id, cjson.encode(delivery), 'EX', ARGV[6])
    redis.call('RPUSH', fifo, id)
    redis.call('ZREM', dead, id)
    replayed = replayed + 1
  end
end
if #found < 2 * count then return {replayed, ''} end
return {replayed, found[#found]}
