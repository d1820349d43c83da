-- The delivering worker's step, one per batch of events, in one atomic step: store the
-- deliveries just attempted and the endpoint's state they led to, then return the FIFO head to
-- attempt next with the instance's webhook URL, sealed secret and endpoint state, renewing the
-- lock for the attempt. The lock was taken with the instance (webhook_take_due.lua), or by the
-- step that published the event (finish.lua); its holder lets go only here, with the FIFO empty,
-- or by handing over with webhook_hand_over.lua.
-- KEYS: 1 lock, 2 fifo, 3 log, 4 stats (hash), 5 inst (the instance hash), 6 endpoint (hash),
--       7 dead (dead letters)
-- ARGV: 1 token (the lock's), 2 lock_ms (its expiry), 3 prefix (of the delivery keys), 4 kept
--       (settled deliveries kept in the log), 5 limits (JSON, see outbox_add.lua), 6 state (the
--       endpoint's new state, '' when it did not change), 7 since (ms), 8 probes, 9 batch
--       (deliveries to return at most); then, for each delivery
--       attempted (in FIFO order), 7 values: its id, its record, 'delivered', 'dead' or '' (not
--       settled), ms from publication to delivery ('' unless delivered now), then '1' or '0' for
--       each stats field: failed, delivered, deadLettered
-- returns: nil (nothing left to send: the lock is let go), 'lost' (the lock expired under its
--          holder), or the head with the deliveries after it (next_head in outbox_add.lua)
local lock, fifo, log, stats, inst, endpoint, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local token, lock_ms, prefix, kept = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local limits = cjson.decode(ARGV[5])
local state, since, probes, batch = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local attempted = {}
for g = 10, #ARGV, 7 do
  table.insert(attempted, {id = ARGV[g], record = ARGV[g + 1], settled = ARGV[g + 2], latency = ARGV[g + 3],
    counted = {ARGV[g + 4], ARGV[g + 5], ARGV[g + 6]}})
end

-- Drops the oldest settled deliveries beyond the number kept from the log, oldest first, a few
-- at a time; a dead letter's record stays (replayable among the dead letters until it expires).
-- It stops at the first one not settled: deliveries settle in order, so what follows it is held
-- (a backlog of 100,000 costs nothing here).
local function trim()
  local excess = redis.call('ZCARD', log) - kept
  if excess <= 0 then return end
  for _, id in ipairs(redis.call('ZRANGE', log, 0, math.min(excess, 10) - 1)) do
    local raw = redis.call('GET', prefix .. id)
    local status = raw and cjson.decode(raw).status
    if raw and status ~= 'delivered' and status ~= 'dead' then return end
    redis.call('ZREM', log, id)
    if status ~= 'dead' then redis.call('DEL', prefix .. id) end
  end
end

if state ~= '' then redis.call('HSET', endpoint, 'state', state, 'since', since, 'probes', probes) end
local COUNTED = {'failed', 'delivered', 'deadLettered'}
for _, done in ipairs(attempted) do
  local id, settled = done.id, done.settled
  -- XX: the instance may have been deleted during the attempt; its deliveries stay deleted.
  if settled == '' then
    redis.call('SET', prefix .. id, done.record, 'XX', 'KEEPTTL')
  else
    redis.call('SET', prefix .. id, done.record, 'XX', 'EX', limits.retention)
  end
  for i, field in ipairs(COUNTED) do
    if done.counted[i] == '1' then redis.call('HINCRBY', stats, field, 1) end
  end
  if done.latency ~= '' then observe(stats, 'latency', tonumber(done.latency)) end
  if settled ~= '' then
    redis.call('LREM', fifo, 1, id)
    if settled == 'dead' and redis.call('EXISTS', prefix .. id) == 1 then
      keep_dead(prefix, dead, log, id, limits.backlog) -- outbox_add.lua
    end
    trim()
  end
end

if redis.call('GET', lock) ~= token then return 'lost' end
redis.call('PEXPIRE', lock, lock_ms)
return next_head(lock, fifo, inst, endpoint, prefix, batch) -- outbox_add.lua
