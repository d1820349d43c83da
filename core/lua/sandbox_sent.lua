-- The sandbox's "WhatsApp" takes a send once: written again after a lost answer (a Redis restart
-- mid-call), it is not recorded twice.
-- KEYS: 1 sent (the instance's list of sends), 2 marker (this send's WhatsApp id's marker)
-- ARGV: 1 record (the send's JSON record), 2 marker_ttl (s the marker lasts)
-- returns: 1
local sent, marker = KEYS[1], KEYS[2]
local record, marker_ttl = ARGV[1], ARGV[2]

if redis.call('SET', marker, '1', 'NX', 'EX', marker_ttl) then
  redis.call('RPUSH', sent, record)
end
return 1
