-- Wake the pump now if it has something to send: when the instance opens, or when a worker
-- adopts it. ARGV 7 '1' to reset the pump first (adoption): a message that was in flight on a
-- dead worker goes back to the head of its lane, marked as possibly sent, and any wake-up
-- scheduled on the old owner's queue is forgotten. Returns the re-queued id or false.
local requeued = false
if ARGV[7] == '1' then
  local inflight = redis.call('HGET', pump, 'inflight')
  local lane = lane_index(redis.call('HGET', pump, 'inflightLane') or '')
  if inflight and lane then
    local msg = msg_prefix .. inflight
    if redis.call('EXISTS', msg) == 1 and redis.call('HGET', msg, 'status') == 'sending' then
      redis.call('HSET', msg, 'status', 'pending', 'possiblyDuplicated', '1')
      redis.call('ZREM', sent_key(lane), inflight)
      redis.call('LPUSH', lane_key(lane), inflight)
      requeued = inflight
    end
  end
  redis.call('HDEL', pump, 'inflight', 'inflightLane', 'due')
end
wake_if_open()
return requeued
