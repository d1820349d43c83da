-- Remember when an instance was first linked (its warm-up counts days from then), once.
-- KEYS: 1 instance hash. ARGV: 1 now (ms). Returns 1 if this was its first link.
if redis.call('HEXISTS', KEYS[1], 'createdAt') == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'firstLinkedMs', ARGV[1])
