-- Set (or, for nulls, remove) fields of an instance record, only while the instance exists: a
-- driver event racing a delete must not leave a partial record behind.
-- KEYS: 1 instance hash. ARGV: 1 fields JSON. Returns 1 if it was updated.
if redis.call('HEXISTS', KEYS[1], 'createdAt') == 0 then return 0 end
hset_json(KEYS[1], ARGV[1])
return 1
