-- Queue dead letters again, oldest first, behind the instance's held deliveries, with a fresh
-- retry schedule and the same delivery ids: one bounded step of a bulk replay (outbox.py), up to
-- `count` dead letters published after number `after`, those created within [since, till] (ISO
-- 8601 in UTC, '' for open) taken, the others left. A dead letter whose record expired is
-- forgotten.
-- KEYS: 1 dead (dead letters), 2 fifo, 3 inst (the instance hash)
-- ARGV: 1 after (publication number to go on after), 2 since, 3 till, 4 prefix (of the delivery
--       keys), 5 count (dead letters at most), 6 pending_ttl (s a held record lives)
-- returns: {how many were queued, the publication number to go on after, or '' when done}
local dead, fifo, inst = KEYS[1], KEYS[2], KEYS[3]
local after, since, till, prefix, count, pending_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]

if redis.call('HEXISTS', inst, 'createdAt') == 0 then return {0, ''} end
local found = redis.call('ZRANGEBYSCORE', dead, '(' .. after, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
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
    redis.call('SET', prefix .. id, cjson.encode(delivery), 'EX', pending_ttl)
    redis.call('RPUSH', fifo, id)
    redis.call('ZREM', dead, id)
    replayed = replayed + 1
  end
end
if #found < 2 * count then return {replayed, ''} end
return {replayed, found[#found]}
