--[[
  UpdateEvent: changes settings, then gives any seats a raised capacity freed to
  the head of the queue. Lowering the capacity takes no seat back.

  KEYS: see includes/event.lua
  ARGV pairs: field, value (fields: name, capacity, hold_seconds, paused,
  opens_at, closes_at, max_waiting, pow_difficulty; times in ms, 0 for none)

  Returns {0, promoted ids...} or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(nil, false)
if not ev then return refused end
if #ARGV > 0 then
  -- Older scripts must not act on settings they do not know (pow_difficulty).
  redis.call('HSET', K_META, 'layout', LAYOUT, unpack(ARGV))
  ev = load_event(nil, false)
end
local promoted = fill(ev, now_ms())
changed({{OP_SETTINGS}, {OP_PROMOTED, #promoted}})
local result = {0}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
