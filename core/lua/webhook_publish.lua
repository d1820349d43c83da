-- Publish one event (see outbox_add.lua), due now by Redis's clock.
-- KEYS: outbox_add.lua's `k`: 1 record, 2 fifo, 3 log, 4 sequence, 5 due (the due-set), 6 bell
--       (its bell), 7 inst (the instance hash), 8 lock, 9 tenant_events (the tenant's stream),
--       10 events (the gateway's stream), 11 endpoint (hash), 12 dead (dead letters), 13 stats
-- ARGV: 1 delivery_id, 2 publication (JSON, see outbox_add.lua), 3 instance (its name)
-- returns: 0 (the instance is gone), 1 (recorded)
local delivery_id, publication, instance = ARGV[1], ARGV[2], ARGV[3]

return outbox_add(KEYS, instance, delivery_id, publication, redis_ms(), nil)
