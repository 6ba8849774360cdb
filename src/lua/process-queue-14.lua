--[[
  ProcessQueue: the first min(free seats, waiting) users move into seats, in
  FIFO order.

  KEYS: see includes/event.lua
  ARGV[1] default event's capacity ('' for any other event)

  Returns {0, promoted ids...} or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(ARGV[1], false)
if not ev then return refused end
local promoted = fill(ev, now_ms())
if #promoted > 0 then changed({{OP_PROMOTED, #promoted}}) end
local result = {0}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
