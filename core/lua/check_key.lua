-- The gatekeeper's step (gateway/ratelimit.py), one round trip: authorize.lua's check.
-- KEYS: authorize.lua's three: 1 key_record, 2 key_counter, 3 address_counter
-- ARGV: 1 presented (the key's digest, '' for the admin key), 2 counter_ttl (s)
-- returns: {tenantId or '', count}
local presented, counter_ttl = ARGV[1], ARGV[2]

local tenant, count = authorize(KEYS, presented, counter_ttl)
return {tenant, count}
