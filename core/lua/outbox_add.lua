-- Events kept on the streams GET /events reads (about: Redis trims whole blocks): how far back a
-- client that was away can catch up with ?since=.
local TENANT_EVENTS_KEPT, EVENTS_KEPT = 10000, 100000

-- Record a webhook event in an instance's outbox and make the instance due for delivery now,
-- unless it is due already (with its head's retry, say: an instance's events go in order). An
-- instance being deleted (no createdAt) takes no more events: they would outlive it.
-- k: {record, FIFO, log, sequence, due-set, its bell, instance hash, lock, tenant's event stream,
-- gateway's event stream}.
-- take: nil, or {lock token, lock expiry ms} to deliver at once: when the event is the FIFO's
-- head and nobody holds the lock, the caller gets the lock instead of the instance being made due
-- (no delivery loop needs waking).
-- Returns 0 (gone), 1 (recorded and due), or {record, url, sealed secret} when taken.
local function outbox_add(k, name, delivery_id, record, now_ms, take)
  if redis.call('HEXISTS', k[7], 'createdAt') == 0 then return 0 end
  redis.call('SET', k[1], record)
  redis.call('RPUSH', k[2], delivery_id)
  redis.call('ZADD', k[3], redis.call('INCR', k[4]), delivery_id)
  -- GET /events: the envelope also goes on the tenant's and the gateway's capped streams.
  local envelope = cjson.decode(record).body
  for i, kept in ipairs({TENANT_EVENTS_KEPT, EVENTS_KEPT}) do
    redis.call('XADD', k[8 + i], 'MAXLEN', '~', kept, '*', 'instance', name, 'delivery', delivery_id,
      'envelope', envelope)
  end
  if take and redis.call('LINDEX', k[2], 0) == delivery_id and not redis.call('ZSCORE', k[5], name)
      and redis.call('SET', k[8], take[1], 'NX', 'PX', take[2]) then
    local url, sealed = unpack(redis.call('HMGET', k[7], 'webhookUrl', 'webhookSecret'))
    return {record, url, sealed}
  end
  if redis.call('ZADD', k[5], 'NX', now_ms, name) == 1 then
    redis.call('RPUSH', k[6], 1)
    redis.call('LTRIM', k[6], -1, -1)
  end
  return 1
end
