-- A receipt from the recipient's phone: move each message it names forward to `status`, never
-- back (sent -> delivered -> read), and only while its record exists: an expired record is not
-- brought back without its expiry.
-- KEYS: none
-- ARGV: 1 instance (its name: its WhatsApp-id index, K.whatsapp_id), 2 field (the status field's
--       name), 3 status, 4 rank_json (JSON {status: rank}); from 5 the WhatsApp ids
-- returns: per message moved, its record as a flat field/value list (before the move)
local instance, field, status, rank_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local wa_ids = {}
for i = 5, #ARGV do table.insert(wa_ids, ARGV[i]) end

local rank = cjson.decode(rank_json)
local moved = {}
for _, wa_id in ipairs(wa_ids) do
  local id = redis.call('GET', K.whatsapp_id(instance, wa_id))
  if id then
    local msg = K.message(id)
    local current = redis.call('HGET', msg, field)
    if current and (rank[current] or 99) < rank[status] then
      table.insert(moved, redis.call('HGETALL', msg))
      redis.call('HSET', msg, field, status)
    end
  end
end
return moved
