-- Recovery, for every instance a worker owns, in one step that the worker runs while its claim
-- loop is held (so no claim is half-way): a send marked in flight that the worker is not running
-- (the claim's answer was lost to a connection cut) goes back to the head of its lane, never
-- sent; an instance with waiting messages and no wake-up in the due-set gets one.
-- KEYS: none
-- ARGV: 1-2 common.lua's (now_ms, instance: '' here), 3 worker, 4 owned (JSON list of the
--       instances it owns), 5 running_json (JSON list of those with a send running in the worker)
-- returns: the names it had to act on
local worker, owned, running_json = ARGV[3], ARGV[4], ARGV[5]

local running = {}
for _, n in ipairs(cjson.decode(running_json)) do running[n] = true end
local set = K.due(worker)
local fixed = {}
for _, n in ipairs(cjson.decode(owned)) do
  bind(n)
  local acted = false
  if redis.call('HGET', inst, 'owner') ~= worker then
    -- not ours any more: its new owner looks after it
  elseif redis.call('HGET', pump, 'due') == '0' then
    if not running[n] then
      reset_pump(false)
      wake_if_open()
      acted = true
    end
  elseif not redis.call('ZSCORE', set, n) then
    local waiting = 0
    for i = 1, 3 do waiting = waiting + redis.call('LLEN', lane_key(i)) end
    if waiting > 0 and redis.call('HGET', inst, 'state') == 'open' then
      redis.call('HDEL', pump, 'due')
      wake_if_open()
      acted = true
    end
  end
  if acted then table.insert(fixed, n) end
end
return fixed
