-- Whether each of many instances exists, in one step (a batch's check of the instances it names),
-- where a pipeline of a command per instance cost the API about 5 us a command.
-- KEYS: each instance's hash
-- ARGV: none
-- returns: per instance, 1 if it exists, else 0
local hashes = KEYS

local found = {}
for i, hash in ipairs(hashes) do found[i] = redis.call('HEXISTS', hash, 'createdAt') end
return found
