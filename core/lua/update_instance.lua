-- Set (or, for nulls, remove) fields of an instance record, only while the instance exists: a
-- driver event racing a delete must not leave a partial record behind.
-- KEYS: 1 inst (the instance hash)
-- ARGV: 1 fields (JSON)
-- returns: 1 if it was updated, else 0
local inst = KEYS[1]
local fields = ARGV[1]

if redis.call('HEXISTS', inst, 'createdAt') == 0 then return 0 end
hset_json(inst, fields)
return 1
