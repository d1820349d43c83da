-- `hset_json(key, json)`: set the fields of a JSON object on a hash; a null removes the field.
-- KEYS: none (a library: its caller passes them)
-- ARGV: none (a library: its caller passes them)
-- returns: nothing; defines hset_json
local function hset_json(key, json)
  local fields, args, gone = cjson.decode(json), {}, {}
  for k, v in pairs(fields) do
    if v == cjson.null then
      table.insert(gone, k)
    else
      table.insert(args, k)
      table.insert(args, tostring(v))
    end
  end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
end
