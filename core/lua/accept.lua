-- Accept messages for one instance: records + lane entries + wake-up, all or nothing.
-- ARGV 8 how long a client reference is remembered (s), 9 how many message ids the instance's
-- index of recent messages keeps; 10, 11 and 12 the API key check below ('' without one); from
-- 13, for each message: its id, its lane, its record as JSON and the key of its client reference
-- ('' when it has none).
-- With KEYS (a send route's request: scheduler/lanes.py KeyCheck), the API key is checked first,
-- as authorize.lua does (its KEYS; ARGV 10 the key's digest, '' for the admin key, 11 the
-- counter's lifetime), and nothing is recorded unless the key is known, within its per-minute
-- limit (ARGV 12) and its tenant's (the admin's: any) instance this is: auth and accept in one
-- round trip.
-- A message whose client reference already names a message of this instance is not queued
-- again: its answer is that earlier message's id.
-- Nothing is recorded either when the instance's lanes would hold more than the queue limit
-- (rules.queueLimit): then the answer starts with -1.
-- Returns {0 if nothing was recorded (the key may not send here, or the instance is gone), else 1;
-- the key's tenant ('' for the admin and for no key check) and its count this minute (0 for no
-- key check); then per message the earlier message's id, or '' when it was queued now}.
local verdict = {'', 0}
if #KEYS > 0 then
  local tenant, count = authorize(KEYS, ARGV[10], ARGV[11])
  verdict = {tenant, count}
  local admin = ARGV[10] == ''
  local cut = string.find(name, '__', 1, true)
  local owner = cut and string.sub(name, 1, cut - 1) or name -- core/instances.py tenant_of
  if count > tonumber(ARGV[12]) or not (admin or (tenant ~= '' and tenant == owner)) then
    return {0, tenant, count}
  end
end
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return {0, verdict[1], verdict[2]} end
local waiting = 0
for i = 1, 3 do waiting = waiting + redis.call('LLEN', lane_key(i)) end
if waiting + (#ARGV - 12) / 4 > rules.queueLimit then return {-1, verdict[1], verdict[2]} end
local ref_ttl, recent_kept, answers, queued = tonumber(ARGV[8]), tonumber(ARGV[9]), {1, verdict[1], verdict[2]}, {}
for i = 13, #ARGV, 4 do
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
