-- Why the head message of each of the bound instance's lanes waits, and until when (API.md,
-- "Every waiting message says why"). Read on demand (GET /message/{id}, the queue route): the
-- send path never runs it. It asks the claim's own helpers (common.lua), so it tells what the
-- next claim will find, in the order next_send weighs it: a lane held by its quotas, the bulk
-- pause or its head's recipient waits for that; of the lanes free of those, the first one goes
-- after the gap (or a retry's delay) and the ones below it wait behind it ('queued').
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance)
-- returns: per lane with messages, field/value pairs (scheduler/lanes.py Head): lane, head (its
--          head message's id), reason, until_ms (the earliest time it can go, ms; '' when that
--          depends on something else: the number linking, the messages ahead)
local found = {}
local function report(i, head, reason, at)
  table.insert(found, {'lane', LANES[i], 'head', head, 'reason', reason, 'until_ms', at or ''})
end

local open = redis.call('HGET', inst, 'state') == 'open'
local last, inflight = redis.call('HGET', pace, 'last'), redis.call('HGET', pump, 'inflight')
local ahead = inflight ~= false -- a send in flight, or a lane above that goes first
for i = 1, 3 do
  local head = redis.call('LINDEX', lane_key(i), 0)
  if head then
    if not open then
      report(i, head, 'not_connected', nil)
    else
      local at, why = quota_free_at(i)
      if LANES[i] == 'bulk' then
        local paused = tonumber(redis.call('HGET', pump, 'throttledUntil') or '0')
        if paused > at then at, why = paused, 'throttled' end
      end
      local free, held = recipient_free_at(i, head)
      if free > at then at, why = free, held end
      if at > now then
        report(i, head, why, at)
      elseif ahead then
        report(i, head, 'queued', nil)
      else
        ahead = true
        at, why = now, 'queued'
        local gap = tonumber(last or '0') + tonumber(redis.call('HGET', pace, 'gap:' .. LANES[i]) or '0')
        if gap > at then at, why = gap, 'gap' end
        local retry = tonumber(redis.call('HGET', pump, 'retry:' .. LANES[i]) or '0')
        if retry > at then at, why = retry, 'retry' end
        report(i, head, why, at)
      end
    end
  end
end
return found
