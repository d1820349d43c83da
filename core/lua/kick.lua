-- Wake the pump now if it has something to send: when the instance opens, or when a worker
-- adopts it. ARGV 7 '1' to reset the pump first (adoption, see reset_pump). Returns the re-queued
-- id or false.
local requeued = false
if ARGV[7] == '1' then requeued = reset_pump() end
wake_if_open()
return requeued
