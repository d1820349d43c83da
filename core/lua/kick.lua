-- Wake the instance now if it has something to send: when it opens, or when a worker adopts it.
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance), 3 reset ('1' to reset the pump first, on
--       adoption: a message the previous owner had in flight goes back, possibly duplicated)
-- returns: the re-queued id or false
local reset = ARGV[3]

local requeued = false
if reset == '1' then requeued = reset_pump(true) end
wake_if_open()
return requeued
