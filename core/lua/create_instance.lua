-- Create an instance record, all or nothing: a create cut short must not leave a name-only record
-- behind (409 on the next create, 404 on delete).
-- KEYS: 1 instance hash, 2 the tenant's instances (zset), 3 every instance (set).
-- ARGV: 1 name, 2 creation score (s), 3 fields JSON. Returns 0 if the name is taken.
-- The indexes are written first: should one fail (a key of the wrong type), no record is left.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'name', ARGV[1])
hset_json(KEYS[1], ARGV[3])
return 1
