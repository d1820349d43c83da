-- A page of an instance's chats, the most recent first, before a cursor (core/conversations.py);
-- needs conversation_page.lua before it.
-- KEYS: 1 the instance's chat index
-- ARGV: 1 the instance's conversation key prefix (core/keys.py conversation_prefix: its chat
--       hashes are "c:<chatId>", their records "m:<chatId>"), 2 exclusive upper bound
--       ("(" .. member, or "+"), 3 page size
-- Returns {next member or false, {chatId, name, isGroup, unread, last message JSON or false}...};
-- a chat whose hash expired is skipped.
local chats = KEYS[1]
local prefix, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
return page(chats, before, limit, function(member)
  local chat_id = string.sub(member, ID_AT)
  local chat = redis.call('HMGET', prefix .. 'c:' .. chat_id, 'name', 'isGroup', 'unread', 'last')
  if not chat[2] then
    return false
  end
  local record = false
  if chat[4] then
    record = redis.call('HGET', prefix .. 'm:' .. chat_id, string.sub(chat[4], ID_AT))
  end
  return {chat_id, chat[1] or false, chat[2], chat[3] or '0', record}
end)
