-- The gatekeeper's step (gateway/ratelimit.py), one round trip: authorize.lua's KEYS and its
-- ARGV 1 the presented key's digest, 2 the counter's lifetime (s). Returns {tenantId or '', count}.
local tenant, count = authorize(KEYS, ARGV[1], ARGV[2])
return {tenant, count}
