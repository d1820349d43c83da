-- Authenticate an API key and count the request against its per-minute limit: `authorize(k,
-- presented, ttl)` with k the script's KEYS below, presented the SHA-256 of the presented key ('' for
-- the admin key, already checked by the caller) and ttl the counter's lifetime (s). It answers the
-- tenant id ('' for the admin key and for an unknown key) and the count.
-- KEYS: 1 key_record (may not exist), 2 key_counter (the key's rate-limit counter),
--       3 address_counter (the caller address's, used when the key is unknown, so guessing keys
--       is limited too)
-- ARGV: none (a library: its caller passes them)
-- returns: nothing; defines authorize
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
