-- The webhook outbox's shared steps: `outbox_add` records an event (below), `dead_letter` and
-- `keep_dead` keep what is given up on replayable, `head_with` answers the head to deliver and
-- `next_head` finds it.
-- KEYS: none (a library: its caller passes them, see outbox_add's `k`)
-- ARGV: none (a library: its caller passes them)
-- returns: nothing; defines outbox_add, dead_letter, keep_dead, head_with and next_head

-- Events kept on the streams GET /events reads (about: Redis trims whole blocks): how far back a
-- client that was away can catch up with ?since=.
local TENANT_EVENTS_KEPT, EVENTS_KEPT = 10000, 100000

-- Redis's clock (ms): every time the outbox stamps or judges, whichever process asks.
local function redis_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Keep dead letter `id` replayable: in the instance's dead letters (sorted by publication
-- number, as in the log) until its record expires; the oldest beyond `cap` go for good.
local function keep_dead(prefix, dead, log, id, cap)
  redis.call('ZADD', dead, redis.call('ZSCORE', log, id) or 0, id)
  local excess = redis.call('ZCARD', dead) - cap
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', dead, 0, excess - 1)) do
      redis.call('ZREM', dead, old)
      redis.call('ZREM', log, old)
      redis.call('DEL', prefix .. old)
    end
  end
end

-- Dead-letter held delivery `id` (its record at prefix .. id) without attempting it: settled,
-- counted, kept `limits.retention` s (see keep_dead).
local function dead_letter(prefix, dead, log, stats, id, limits)
  local key = prefix .. id
  local raw = redis.call('GET', key)
  if not raw then return end
  local delivery = cjson.decode(raw)
  delivery.status, delivery.nextAttemptAt = 'dead', cjson.null
  redis.call('SET', key, cjson.encode(delivery), 'EX', limits.retention)
  redis.call('HINCRBY', stats, 'deadLettered', 1)
  keep_dead(prefix, dead, log, id, limits.backlog)
end

-- The head to deliver as the deliverer takes it, as field/value pairs (webhooks/outbox.py
-- HeadRow): record, url, sealed_secret, the endpoint's state, since, probes, previous_secret and
-- previous_until ('' when unset: Endpoint.of in webhooks/endpoint.py), following (the records
-- of deliveries after it, to go in the same batch), and now_ms: Redis's time, the clock the
-- deliverer schedules and judges by.
local function head_with(record, url, sealed, endpoint, following)
  local state, since, probes, previous_secret, previous_until = unpack(redis.call('HMGET', endpoint, 'state',
    'since', 'probes', 'previousSecret', 'previousUntil'))
  return {'record', record, 'url', url, 'sealed_secret', sealed or '', 'state', state or '', 'since', since or '',
    'probes', probes or '', 'previous_secret', previous_secret or '', 'previous_until', previous_until or '',
    'following', following or {}, 'now_ms', redis_ms()}
end

-- The head of FIFO `fifo` to deliver under lock `lock` (its caller holds it), as head_with
-- answers it with, while the endpoint is ok or disabled, the records of up to `batch` - 1
-- deliveries after it as its `following`: a healthy receiver's backlog costs one step per batch,
-- not per event. nil once nothing is left to send: the lock is let go then. `inst` is the
-- instance's hash, `endpoint` its endpoint's, `prefix` its delivery records' key prefix.
local function next_head(lock, fifo, inst, endpoint, prefix, batch)
  local url, sealed = unpack(redis.call('HMGET', inst, 'webhookUrl', 'webhookSecret'))
  while url do -- no URL: the instance is deleted, its outbox with it
    local head = redis.call('LINDEX', fifo, 0)
    if not head then break end
    local raw = redis.call('GET', prefix .. head)
    if raw then
      local following, health = {}, redis.call('HGET', endpoint, 'state')
      if not health or health == 'ok' or health == 'disabled' then
        for _, next_id in ipairs(redis.call('LRANGE', fifo, 1, batch - 1)) do
          local more = redis.call('GET', prefix .. next_id)
          if not more then break end -- expired: the head's loop below drops it in its turn
          table.insert(following, more)
        end
      end
      return head_with(raw, url, sealed, endpoint, following)
    end
    -- Its record expired, or was trimmed while a replay queued it again: nothing is left to send.
    redis.call('LREM', fifo, 1, head)
  end
  redis.call('DEL', lock)
  return nil
end

-- Record a webhook event in an instance's outbox and make the instance due for delivery now,
-- unless it is due already (with its head's retry or probe, say: an instance's events go in
-- order). An instance being deleted (no createdAt) takes no more events: they would outlive it.
-- The endpoint's filter drops an event it does not want (GET /events still gets it); a disabled
-- endpoint's events are dead-lettered at once; past the backlog bound the oldest held delivery
-- not being attempted is dead-lettered.
-- k: {record, FIFO, log, sequence, due-set, its bell, instance hash, lock, tenant's event stream,
-- gateway's event stream, endpoint hash, dead letters, stats hash}.
-- publication: JSON {record, event, envelope, limits: {pending, retention, backlog}} (outbox.py:
-- the record as stored, the event's name and body, and how long records live, in s).
-- take: nil, or {lock token, lock expiry ms} to deliver at once: when the event is the FIFO's
-- head and nobody holds the lock, the caller gets the lock instead of the instance being made due
-- (no delivery loop needs waking).
-- It answers 0 (gone), 1 (recorded and due, or filtered out), or the head (head_with) when taken.
local function outbox_add(k, name, delivery_id, publication, now_ms, take)
  if redis.call('HEXISTS', k[7], 'createdAt') == 0 then return 0 end
  local p = cjson.decode(publication)
  -- GET /events: the envelope also goes on the tenant's and the gateway's capped streams.
  for i, kept in ipairs({TENANT_EVENTS_KEPT, EVENTS_KEPT}) do
    redis.call('XADD', k[8 + i], 'MAXLEN', '~', kept, '*', 'instance', name, 'delivery', delivery_id,
      'envelope', p.envelope)
  end
  local state, wanted = unpack(redis.call('HMGET', k[11], 'state', 'events'))
  if wanted and not string.find(wanted, ',' .. p.event .. ',', 1, true) then return 1 end
  local prefix = string.sub(k[1], 1, #k[1] - #delivery_id)
  redis.call('SET', k[1], p.record, 'EX', p.limits.pending)
  redis.call('ZADD', k[3], redis.call('INCR', k[4]), delivery_id)
  if state == 'disabled' then
    dead_letter(prefix, k[12], k[3], k[13], delivery_id, p.limits)
    return 1
  end
  local held = redis.call('RPUSH', k[2], delivery_id)
  if held > p.limits.backlog then
    -- The head may be in the middle of an attempt: then the next one is the oldest held.
    local oldest = redis.call('LINDEX', k[2], redis.call('EXISTS', k[8]))
    redis.call('LREM', k[2], 1, oldest)
    dead_letter(prefix, k[12], k[3], k[13], oldest, p.limits)
  end
  if take and redis.call('LINDEX', k[2], 0) == delivery_id and not redis.call('ZSCORE', k[5], name)
      and redis.call('SET', k[8], take[1], 'NX', 'PX', take[2]) then
    local url, sealed = unpack(redis.call('HMGET', k[7], 'webhookUrl', 'webhookSecret'))
    return head_with(p.record, url, sealed, k[11])
  end
  if redis.call('ZADD', k[5], 'NX', now_ms, name) == 1 then
    redis.call('RPUSH', k[6], 1)
    redis.call('LTRIM', k[6], -1, -1)
  end
  return 1
end
