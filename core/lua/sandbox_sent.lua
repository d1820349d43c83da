-- The sandbox's "WhatsApp" takes a send once: KEYS 1 the instance's list of sends, 2 a marker
-- for this send's WhatsApp id; ARGV 1 the send's JSON record, 2 how long the marker lasts (s).
-- Written again after a lost answer (a Redis restart mid-call), it is not recorded twice.
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
return 1
