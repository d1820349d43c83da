-- Authenticate an API key and count the request against its per-minute limit.
-- k: 1 the key's record (may not exist), 2 the key's rate-limit counter, 3 the caller address's
-- counter (used when the key is unknown, so guessing keys is limited too).
-- presented: SHA-256 of the presented key ('' for the admin key, already checked by the caller);
-- ttl: counter lifetime (s).
-- Returns the tenant id ('' for the admin key and for an unknown key) and the count.
local function authorize(k, presented, ttl)
  local tenant = ''
  local counter = k[3]
  if presented == '' then
    counter = k[2]
  else
    local stored = redis.call('HMGET', k[1], 'tenantId', 'hash')
    if stored[1] and stored[2] == presented then
      tenant = stored[1]
      counter = k[2]
    end
  end
  local count = redis.call('INCR', counter)
  if count == 1 then redis.call('EXPIRE', counter, tonumber(ttl)) end
  return tenant, count
end
