-- Shared by the page scripts: `page(key, before, limit, row)` walks a sorted set of
-- "<13-digit ms>:<id>" members newest first, from an exclusive upper bound, until `limit` members
-- have a row (`row(member)` answers the row, or false when the member's record is gone: it is
-- skipped). It answers {next, rows...}: `next` is the member of the last row when more members
-- follow it, else false.
-- KEYS: none (a library: its caller passes them)
-- ARGV: none (a library: its caller passes them)
-- returns: nothing; defines page and ID_AT
local ID_AT = 15
local function page(key, before, limit, row)
  local rows, last = {}, false
  while true do
    local members = redis.call('ZRANGE', key, before, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)
    for i, member in ipairs(members) do
      if #rows == limit then
        return {last, unpack(rows)}
      end
      local found = row(member)
      if found then
        table.insert(rows, found)
        last = member
      end
      before = '(' .. member
    end
    if #members <= limit then
      return {false, unpack(rows)}
    end
  end
end
