-- Create an instance record, all or nothing: a create cut short must not leave a name-only record
-- behind (409 on the next create, 404 on delete). The indexes are written first: should one fail
-- (a key of the wrong type), no record is left.
-- KEYS: 1 inst (the instance hash), 2 tenant_instances (zset), 3 instances (set of every instance)
-- ARGV: 1 name, 2 score (creation, s), 3 fields (JSON)
-- returns: 1, or 0 if the name is taken
local inst, tenant_instances, instances = KEYS[1], KEYS[2], KEYS[3]
local name, score, fields = ARGV[1], ARGV[2], ARGV[3]

if redis.call('EXISTS', inst) == 1 then return 0 end
redis.call('ZADD', tenant_instances, score, name)
redis.call('SADD', instances, name)
redis.call('HSET', inst, 'name', name)
hset_json(inst, fields)
return 1
