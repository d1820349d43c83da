-- A delivery loop's step: take up to `room` instances whose webhook events are due by Redis's
-- clock, each to this loop only, clear the bell, and take each one's delivery lock with `token`
-- and its head to deliver (next_head in outbox_add.lua, the head alone): a burst of events on many
-- instances costs one step to take and start them all. An instance whose lock another deliverer
-- holds is left to it: that one delivers every event queued meanwhile.
-- KEYS: 1 due (the due-set), 2 bell (its bell)
-- ARGV: 1 room (instances to take at most), 2 token (of the locks taken), 3 lock_ms (their expiry)
-- returns: {Redis's time (ms), the next due time left (ms) or '', the number of instances taken,
--          then for each one whose lock this took with a head to deliver: its name and its head}
local due, bell = KEYS[1], KEYS[2]
local room, token, lock_ms = tonumber(ARGV[1]), ARGV[2], ARGV[3]

local now = redis_ms() -- outbox_add.lua
local taken = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, room)
local answer = {now, '', #taken}
for _, name in ipairs(taken) do
  redis.call('ZREM', due, name)
  local lock = K.webhook_lock(name)
  if redis.call('SET', lock, token, 'NX', 'PX', lock_ms) then
    local head = next_head(lock, K.outbox(name), K.instance(name), K.webhook_endpoint(name),
      K.webhook_delivery(name, ''), 1)
    if head then
      table.insert(answer, name)
      table.insert(answer, head)
    end
  end
end
redis.call('DEL', bell)
answer[2] = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')[2] or ''
return answer
