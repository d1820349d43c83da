-- Accept messages for one instance: records + lane entries + wake-up, all or nothing.
-- ARGV 8 how long a client reference is remembered (s); from 9, for each message: its id, its
-- lane, its record as JSON and the key of its client reference ('' when it has none).
-- A message whose client reference already names a message of this instance is not queued
-- again: its answer is that earlier message's id.
-- Returns 0 if the instance is gone (nothing is recorded then), else {1, then per message the
-- earlier message's id, or '' when it was queued now}.
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
local ref_ttl, answers, queued = tonumber(ARGV[8]), {1}, 0
for i = 9, #ARGV, 4 do
  local ref, earlier = ARGV[i + 3], ''
  if ref ~= '' then
    local known = redis.call('GET', ref)
    if known and redis.call('EXISTS', msg_prefix .. known) == 1 then earlier = known end
  end
  if earlier == '' then
    hset_json(msg_prefix .. ARGV[i], ARGV[i + 2])
    redis.call('RPUSH', lane_key(lane_index(ARGV[i + 1])), ARGV[i])
    if ref ~= '' then redis.call('SET', ref, ARGV[i], 'EX', ref_ttl) end
    queued = queued + 1
  end
  table.insert(answers, earlier)
end
redis.call('HINCRBY', stats, 'accepted', queued)
wake_if_open()
return answers
