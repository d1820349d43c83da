-- Create a tenant with its first API key, all or nothing.
-- KEYS: 1 tenant hash, 2 set of tenants, 3 key hash, 4 the tenant's set of key ids
-- ARGV: 1 tenant id, 2 name, 3 createdAt, 4 key id, 5 key digest. Returns 0 if the tenant exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'createdAt', ARGV[3], 'name', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'tenantId', ARGV[1], 'hash', ARGV[5], 'createdAt', ARGV[3])
redis.call('SADD', KEYS[4], ARGV[4])
return 1
