-- Compare-and-set the owner of an instance, bumping its epoch (the fencing token).
-- KEYS: 1 instance hash, 2 expected owner's instance set, 3 new owner's instance set, 4 expected
-- owner's due-set (the instance leaves it: the new owner schedules it in its own), 5 the new
-- owner's worker record.
-- ARGV: 1 expected owner ('' for none), 2 new owner, 3 instance name.
-- Returns the new epoch, or false when the owner is no longer the expected one (another worker
-- got there first), the instance is gone, or the new owner has started stopping since it was
-- chosen (it would hand the instance on, or leave it to a stale adoption after its restart).
if redis.call('HEXISTS', KEYS[1], 'createdAt') == 0 then return false end
if redis.call('HEXISTS', KEYS[5], 'stopping') == 1 then return false end
if (redis.call('HGET', KEYS[1], 'owner') or '') ~= ARGV[1] then return false end
if ARGV[1] ~= '' then
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[4], ARGV[3])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
