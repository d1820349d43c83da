-- How many messages wait in each of many instances' lanes, in one step (a batch's check of the
-- queue limit before its accept steps, which check it again atomically; the instance listings),
-- where a pipeline of a command per lane cost the API about 5 us a command.
-- KEYS: per instance in turn, each of its `lanes` lane lists
-- ARGV: 1 lanes (how many lane lists each instance has)
-- returns: per instance, its messages waiting in all its lanes
local lists, lanes = KEYS, tonumber(ARGV[1])

local found = {}
for first = 1, #lists, lanes do
  local waiting = 0
  for list = first, first + lanes - 1 do waiting = waiting + redis.call('LLEN', lists[list]) end
  table.insert(found, waiting)
end
return found
