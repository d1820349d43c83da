-- Accept messages for one instance: records + lane entries + wake-up, all or nothing.
-- ARGV 8 how long a client reference is remembered (s), 9 how many message ids the instance's
-- index of recent messages keeps; from 10, for each message: its id, its lane, its record as
-- JSON and the key of its client reference ('' when it has none).
-- A message whose client reference already names a message of this instance is not queued
-- again: its answer is that earlier message's id.
-- Returns 0 if the instance is gone (nothing is recorded then), else {1, then per message the
-- earlier message's id, or '' when it was queued now}.
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
local ref_ttl, recent_kept, answers, queued = tonumber(ARGV[8]), tonumber(ARGV[9]), {1}, {}
for i = 10, #ARGV, 4 do
  local ref, earlier = ARGV[i + 3], ''
  if ref ~= '' then
    local known = redis.call('GET', ref)
    if known and redis.call('EXISTS', msg_prefix .. known) == 1 then earlier = known end
  end
  if earlier == '' then
    hset_json(msg_prefix .. ARGV[i], ARGV[i + 2])
    redis.call('RPUSH', lane_key(lane_index(ARGV[i + 1])), ARGV[i])
    if ref ~= '' then redis.call('SET', ref, ARGV[i], 'EX', ref_ttl) end
    table.insert(queued, ARGV[i])
  end
  table.insert(answers, earlier)
end
-- The gateway-wide count of accepted messages orders the recent index (core/keys.py
-- recent_messages): milliseconds would tie.
local count = redis.call('HINCRBY', stats, 'accepted', #queued)
if #queued > 0 then
  local recent = inst .. ':recent'
  for k, id in ipairs(queued) do redis.call('ZADD', recent, count - #queued + k, id) end
  redis.call('ZREMRANGEBYRANK', recent, 0, -(recent_kept + 1))
end
wake_if_open()
return answers
