-- Record a webhook event in an instance's outbox and make the instance due for delivery now,
-- unless it is due already (with its head's retry, say: an instance's events go in order). An
-- instance being deleted (no createdAt) takes no more events: they would outlive it.
-- k: {record, FIFO, log, sequence, due-set, its bell, instance hash}. Returns 1 if recorded.
local function outbox_add(k, name, delivery_id, record, now_ms)
  if redis.call('HEXISTS', k[7], 'createdAt') == 0 then return 0 end
  redis.call('SET', k[1], record)
  redis.call('RPUSH', k[2], delivery_id)
  redis.call('ZADD', k[3], redis.call('INCR', k[4]), delivery_id)
  if redis.call('ZADD', k[5], 'NX', now_ms, name) == 1 then
    redis.call('RPUSH', k[6], 1)
    redis.call('LTRIM', k[6], -1, -1)
  end
  return 1
end
