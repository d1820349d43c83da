-- Publish one event (see outbox_add.lua), due now by Redis's clock.
-- KEYS: 1 record, 2 FIFO, 3 log, 4 sequence, 5 due-set, 6 its bell, 7 instance hash, 8 lock,
--       9 the tenant's event stream, 10 the gateway's event stream
-- ARGV: 1 delivery id, 2 record, 3 instance name
return outbox_add(KEYS, ARGV[3], ARGV[1], ARGV[2], redis_ms(), nil)
