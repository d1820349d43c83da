-- Prometheus figures, counted in the step that already writes what they count (gateway/metrics.py
-- reads them at scrape time): no extra round trip on any path.
-- A histogram observation of v ms counts in bucket k, the smallest k with v <= 2^k ms, for k up
-- to HISTOGRAM_TOP (2^27 ms, about 37 h); a larger value counts in bucket HISTOGRAM_TOP + 1,
-- which only the +Inf bucket shows. Fields on `hash`: '<name>:<k>' and '<name>:sum' (ms).
-- KEYS: none (a library: its caller passes them)
-- ARGV: none (a library: its caller passes them)
-- returns: nothing; defines observe, count_send and count_unsent
local HISTOGRAM_TOP = 27

local function observe(hash, name, ms)
  ms = math.max(0, math.floor(ms))
  local k, bound = 0, 1
  while ms > bound and k <= HISTOGRAM_TOP do
    k = k + 1
    bound = bound * 2
  end
  redis.call('HINCRBY', hash, name .. ':' .. k, 1)
  redis.call('HINCRBY', hash, name .. ':sum', ms)
end

-- A send's outcome by lane ('sends:<lane>:<outcome>'; the pump's 'requeue' counts as 'retried'
-- and both kinds of failure as 'failed'); for one that went out, its lateness (from when its
-- lanes first allowed it to when it went, less the "typing..." it showed on purpose: the claim
-- comes that much before the gap ends), the typing apart, and its time from accept to sent.
local SEND_OUTCOMES = {sent = 'sent', failed = 'failed', failed_uncounted = 'failed', requeue = 'retried',
  expired = 'expired'}

local function count_send(hash, lane, outcome, msg, at)
  redis.call('HINCRBY', hash, 'sends:' .. lane .. ':' .. SEND_OUTCOMES[outcome], 1)
  if outcome ~= 'sent' then return end
  local created, eligible, typing = unpack(redis.call('HMGET', msg, 'createdMs', 'eligibleMs', 'typingMs'))
  typing = tonumber(typing or '0')
  if eligible then observe(hash, 'lateness:' .. lane, at - tonumber(eligible) - typing) end
  if typing > 0 then observe(hash, 'typing:' .. lane, typing) end
  if created then observe(hash, 'accept_to_sent:' .. lane, at - tonumber(created)) end
end

-- A message that ended unsent (failed, or cancelled by a flush), by its errorCode
-- ('unsent:<code>': the label of gateway/metrics.py's wa_messages_unsent).
local function count_unsent(hash, code, n)
  redis.call('HINCRBY', hash, 'unsent:' .. (code or 'whatsapp_error'), n or 1)
end
