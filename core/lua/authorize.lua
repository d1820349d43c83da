-- Authenticate an API key and count the request against its per-minute limit: one round trip.
-- KEYS: 1 the key's record (may not exist), 2 the key's rate-limit counter, 3 the caller address's
-- counter (used when the key is unknown, so guessing keys is limited too).
-- ARGV: 1 SHA-256 of the presented key ('' for the admin key, already checked by the caller),
--       2 counter lifetime (s).
-- Returns {tenantId or '', count}.
local tenant = ''
local counter = KEYS[3]
if ARGV[1] == '' then
  counter = KEYS[2]
else
  local stored = redis.call('HMGET', KEYS[1], 'tenantId', 'hash')
  if stored[1] and stored[2] == ARGV[1] then
    tenant = stored[1]
    counter = KEYS[2]
  end
end
local count = redis.call('INCR', counter)
if count == 1 then redis.call('EXPIRE', counter, tonumber(ARGV[2])) end
return {tenant, count}
