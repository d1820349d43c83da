-- Create a tenant with its first API key, all or nothing.
-- KEYS: 1 tenant (hash), 2 tenants (set of tenants), 3 key (hash), 4 tenant_keys (set of key ids)
-- ARGV: 1 tenant_id, 2 name, 3 created_at, 4 key_id, 5 key_digest
-- returns: 1, or 0 if the tenant exists
local tenant, tenants, key, tenant_keys = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tenant_id, name, created_at, key_id, key_digest = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if redis.call('EXISTS', tenant) == 1 then return 0 end
redis.call('HSET', tenant, 'createdAt', created_at, 'name', name)
redis.call('SADD', tenants, tenant_id)
redis.call('HSET', key, 'tenantId', tenant_id, 'hash', key_digest, 'createdAt', created_at)
redis.call('SADD', tenant_keys, key_id)
return 1
