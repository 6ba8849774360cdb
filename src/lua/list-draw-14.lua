#!lua flags=no-writes
--[[
  ListDrawValues' source: a range of the drawlist's records (includes/event.lua:
  '+' and a value per entrant drawn, '-' and its value per entrant that left
  before the draw was done), in the order drawn; never who holds them. The
  service sorts them once per process. Read-only, O(range).

  KEYS: see includes/event.lua
  ARGV[1] first record (0-based), ARGV[2] most records

  Returns {0, records in the list, draw_drawn, text of the records}
          (0, 0, '' until the draw is done) or {ERR_NO_EVENT}
]]
--- @include "event"

local RECORD = 14
local ev, refused = load_event(nil, true)
if not ev then return refused end
if ev.draw ~= DRAW_DONE then return {0, 0, 0, ''} end
local from, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local records = redis.call('STRLEN', K_DRAWLIST) / RECORD
local text = count > 0 and redis.call('GETRANGE', K_DRAWLIST, from * RECORD, (from + count) * RECORD - 1) or ''
return {0, records, stored_number(redis.call('HGET', K_META, 'draw_drawn')), text}
