-- A page of a chat's messages, newest first, before a cursor (core/conversations.py); needs
-- conversation_page.lua before it.
-- KEYS: 1 order (the chat's message order), 2 records (its records)
-- ARGV: 1 before (exclusive upper bound: "(" .. member, or "+" for the newest), 2 limit (page size)
-- returns: {next member or false, record JSON...}
local order, records = KEYS[1], KEYS[2]
local before, limit = ARGV[1], tonumber(ARGV[2])

return page(order, before, limit, function(member)
  return redis.call('HGET', records, string.sub(member, ID_AT))
end)
