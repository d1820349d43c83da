-- A receipt from the recipient's phone: move each message it names forward to `status`, never
-- back (sent -> delivered -> read), and only while its record exists: an expired record is not
-- brought back without its expiry.
-- ARGV: 1 key prefix of the instance's WhatsApp-id index (core/keys.py whatsapp_id), 2 message key
--       prefix, 3 the status field's name, 4 status, 5 JSON {status: rank}; from 6 WhatsApp ids.
-- Returns, per message moved, its record as a flat field/value list (before the move).
local rank = cjson.decode(ARGV[5])
local field, status = ARGV[3], ARGV[4]
local moved = {}
for i = 6, #ARGV do
  local id = redis.call('GET', ARGV[1] .. ARGV[i])
  if id then
    local msg = ARGV[2] .. id
    local current = redis.call('HGET', msg, field)
    if current and (rank[current] or 99) < rank[status] then
      table.insert(moved, redis.call('HGETALL', msg))
      redis.call('HSET', msg, field, status)
    end
  end
end
return moved
