-- Store one message of a chat (core/conversations.py RedisConversations), once: a message already
-- stored keeps its record (a redelivery, or history that overlaps what arrived live). The chat
-- keeps its newest message and unread count; the chat and the instance's index are trimmed to
-- the retention (and the chat to its cap), a bounded number of members per call.
-- KEYS: 1 chats (the instance's chat index), 2 chat (the chat's hash), 3 order (the chat's message
--       order), 4 records (its records)
-- ARGV: 1 member ("<13-digit ms>:<messageId>"), 2 record (JSON), 3 chat_id, 4 chat_name (""
--       keeps the one known), 5 is_group ("1"/"0"), 6 unread ("in": one more, "out": none left,
--       "keep"), 7 cap (messages per chat), 8 cutoff (retention: "<13-digit ms>"), 9 ttl (s)
-- returns: 1 when stored, 0 when it was there already
local chats, chat, order, records = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local member, record, chat_id, chat_name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local is_group, unread, cap, cutoff, ttl = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])

local TRIM_PER_CALL = 100
local ID_AT = 15 -- a member is 13 digits, a colon, then the id

local message_id = string.sub(member, ID_AT)
if redis.call('HSETNX', records, message_id, record) == 0 then
  return 0
end
redis.call('ZADD', order, 0, member)

local last = redis.call('HGET', chat, 'last')
if not last or member > last then
  if last then
    redis.call('ZREM', chats, string.sub(last, 1, ID_AT - 1) .. chat_id)
  end
  redis.call('ZADD', chats, 0, string.sub(member, 1, ID_AT - 1) .. chat_id)
  redis.call('HSET', chat, 'last', member)
end
redis.call('HSET', chat, 'isGroup', is_group)
if chat_name ~= '' then
  redis.call('HSET', chat, 'name', chat_name)
end
if unread == 'in' then
  redis.call('HINCRBY', chat, 'unread', 1)
elseif unread == 'out' then
  redis.call('HSET', chat, 'unread', 0)
elseif redis.call('HEXISTS', chat, 'unread') == 0 then
  redis.call('HSET', chat, 'unread', 0)
end

local function drop(members)
  for _, old in ipairs(members) do
    redis.call('ZREM', order, old)
    redis.call('HDEL', records, string.sub(old, ID_AT))
  end
end
drop(redis.call('ZRANGE', order, '-', '(' .. cutoff, 'BYLEX', 'LIMIT', 0, TRIM_PER_CALL))
local over = redis.call('ZCARD', order) - cap
if over > 0 then
  drop(redis.call('ZRANGE', order, 0, math.min(over, TRIM_PER_CALL) - 1))
end
local idle = redis.call('ZRANGE', chats, '-', '(' .. cutoff, 'BYLEX', 'LIMIT', 0, TRIM_PER_CALL)
if #idle > 0 then
  redis.call('ZREM', chats, unpack(idle))
end

for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ttl)
end
return 1
