-- Wake the instance now if it has something to send: when it opens, or when a worker adopts it.
-- ARGV 8 '1' to reset the pump first (adoption: a message the previous owner had in flight goes
-- back, possibly duplicated). Returns the re-queued id or false.
local requeued = false
if ARGV[8] == '1' then requeued = reset_pump(true) end
wake_if_open()
return requeued
