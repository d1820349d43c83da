-- Accept messages for one instance: records + lane entries + wake-up, all or nothing.
-- With KEYS (a send route's request: core/tenants.py KeyCheck), the API key is checked first, as
-- authorize.lua does, and nothing is recorded unless the key is known, within its per-minute
-- limit and its tenant's (the admin's: any) instance this is: auth and accept in one round trip.
-- A message whose client reference already names a message of this instance is not queued
-- again: its answer is that earlier message's id. Nothing is recorded either when the instance is
-- gone, or when its lanes would hold more than the queue limit (rules.queueLimit).
-- KEYS: none, or authorize.lua's three: 1 key_record, 2 key_counter, 3 address_counter
-- ARGV: 1-2 common.lua's (now_ms, instance), 3 ref_ttl (s a client reference is remembered),
--       4 recent_kept (message ids the instance's recent index keeps), 5 presented (the key's
--       digest, '' for the admin key and without a key check), 6 counter_ttl (s), 7 key_limit
--       (requests a minute; '' without a key check); from 8, per message 4 values: its id, its
--       lane, its record (its fields and values, each a msgpack object: scheduler/lanes.py
--       fields_stream) and its client reference's key ('' for none)
-- returns: field/value pairs (scheduler/lanes.py Acceptance): recorded (1; 0 when the key may not
--          send here or the instance is gone; -1 when the queue is full), tenant (the key's,
--          '' for the admin and without a key check), count (the key's this minute, 0 without a
--          check), earlier (per message queued now '', else the id its client reference queued)
local ref_ttl, recent_kept = tonumber(ARGV[3]), tonumber(ARGV[4])
local presented, counter_ttl, key_limit = ARGV[5], ARGV[6], ARGV[7]
local items = {}
for i = 8, #ARGV, 4 do
  table.insert(items, {id = ARGV[i], lane = ARGV[i + 1], record = ARGV[i + 2], ref = ARGV[i + 3]})
end

local function answer(recorded, tenant, count, earlier)
  return {'recorded', recorded, 'tenant', tenant, 'count', count, 'earlier', earlier or {}}
end

local tenant, count = '', 0
if #KEYS > 0 then
  tenant, count = authorize(KEYS, presented, counter_ttl)
  local admin = presented == ''
  local cut = string.find(name, '__', 1, true)
  local owner = cut and string.sub(name, 1, cut - 1) or name -- core/instances.py tenant_of
  if count > tonumber(key_limit) or not (admin or (tenant ~= '' and tenant == owner)) then
    return answer(0, tenant, count)
  end
end
if redis.call('HEXISTS', inst, 'createdAt') == 0 then return answer(0, tenant, count) end
local waiting = 0
for i = 1, 3 do waiting = waiting + redis.call('LLEN', lane_key(i)) end
if waiting + #items > rules.queueLimit then return answer(-1, tenant, count) end
local earlier, queued = {}, {}
for _, item in ipairs(items) do
  local known = ''
  if item.ref ~= '' then
    local found = redis.call('GET', item.ref)
    if found and redis.call('EXISTS', K.message(found)) == 1 then known = found end
  end
  if known == '' then
    redis.call('HSET', K.message(item.id), cmsgpack.unpack(item.record))
    redis.call('RPUSH', lane_key(lane_index(item.lane)), item.id)
    if item.ref ~= '' then redis.call('SET', item.ref, item.id, 'EX', ref_ttl) end
    table.insert(queued, item.id)
  end
  table.insert(earlier, known)
end
-- The gateway-wide count of accepted messages orders the recent index (core/keys.py
-- recent_messages): milliseconds would tie.
local accepted = redis.call('HINCRBY', stats, 'accepted', #queued)
if #queued > 0 then
  local recent = K.recent_messages(name)
  for k, id in ipairs(queued) do redis.call('ZADD', recent, accepted - #queued + k, id) end
  redis.call('ZREMRANGEBYRANK', recent, 0, -(recent_kept + 1))
end
wake_if_open()
return answer(1, tenant, count, earlier)
