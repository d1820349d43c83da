-- A page of an instance's chats, the most recent first, before a cursor (core/conversations.py);
-- needs conversation_page.lua before it. A chat whose hash expired is skipped.
-- KEYS: 1 chats (the instance's chat index)
-- ARGV: 1 instance (its name: its chats' hashes and records are K.conversation_chat and
--       K.conversation_records), 2 before (exclusive upper bound: "(" .. member, or "+"),
--       3 limit (page size)
-- returns: {next member or false, then per chat field/value pairs (core/conversations.py
--          ChatRow): chat_id, name (or false), is_group, unread, last (its last message's JSON,
--          or false)}
local chats = KEYS[1]
local instance, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])

return page(chats, before, limit, function(member)
  local chat_id = string.sub(member, ID_AT)
  local chat = redis.call('HMGET', K.conversation_chat(instance, chat_id), 'name', 'isGroup', 'unread', 'last')
  if not chat[2] then
    return false
  end
  local record = false
  if chat[4] then
    record = redis.call('HGET', K.conversation_records(instance, chat_id), string.sub(chat[4], ID_AT))
  end
  return {'chat_id', chat_id, 'name', chat[1] or false, 'is_group', chat[2], 'unread', chat[3] or '0', 'last', record}
end)
