-- Compare-and-set the owner of an instance, bumping its epoch (the fencing token).
-- KEYS: 1 inst (the instance hash), 2 expected_set (the expected owner's instance set), 3 new_set
--       (the new owner's instance set), 4 expected_due (the expected owner's due-set: the instance
--       leaves it, the new owner schedules it in its own), 5 new_worker (the new owner's record)
-- ARGV: 1 expected ('' for none), 2 owner (the new one), 3 name (the instance's)
-- returns: the new epoch, or false when the owner is no longer the expected one (another worker
--          got there first), the instance is gone, or the new owner has started stopping since
--          it was chosen (it would hand the instance on, or leave it to a stale adoption after
--          its restart)
local inst, expected_set, new_set, expected_due, new_worker = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local expected, owner, name = ARGV[1], ARGV[2], ARGV[3]

if redis.call('HEXISTS', inst, 'createdAt') == 0 then return false end
if redis.call('HEXISTS', new_worker, 'stopping') == 1 then return false end
if (redis.call('HGET', inst, 'owner') or '') ~= expected then return false end
if expected ~= '' then
  redis.call('SREM', expected_set, name)
  redis.call('ZREM', expected_due, name)
end
redis.call('HSET', inst, 'owner', owner)
redis.call('SADD', new_set, name)
return redis.call('HINCRBY', inst, 'epoch', 1)
