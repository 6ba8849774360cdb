--[[
  Draw: one chunk of an event's pre-queue draw (see includes/draw.lua). Any
  worker's sweeper may run it at any time: before opens_at (or while an
  announced beacon is not yet set) it does nothing; the first call after fixes
  the final seed; each call then draws up to ARGV[1] entrants, the first of
  `waiting` (undrawn entrants keep their seq, below every later join), moving
  each into `drawn` and the drawlist, so no entrant is drawn twice; the call
  that draws the last one marks the draw done, publishes OP_DRAWN and fills the seats.

  KEYS: see includes/event.lua
  ARGV[1] most entrants to draw in this call (keeps every call short)

  Returns {0, drawn_now, done (1: this call finished the draw), promoted ids...}
       or {ERR_NO_EVENT}
]]
--- @include "event"
--- @include "draw"

local ev, refused = load_event(nil, false)
if not ev then return refused end
local now = now_ms()
if not draw_due(ev, now) then return {0, 0, 0} end

if ev.draw == DRAW_OPEN then
  local m = redis.call('HMGET', K_META, 'draw_seed', 'draw_chain', 'draw_beacon_source', 'draw_beacon')
  if (m[3] or '') ~= '' and (m[4] or '') == '' then return {0, 0, 0} end
  -- Entrants are frozen: Reserve pre-queues only while DRAW_OPEN and before opens_at.
  local final = redis.sha1hex((m[1] or '') .. ':' .. (m[2] or '') .. ':' .. (m[4] or ''))
  redis.call('HSET', K_META, 'draw_state', DRAW_DRAWING, 'draw_final', final)
end
local final = redis.call('HGET', K_META, 'draw_final')

local undrawn = stored_number(redis.call('HGET', K_META, 'draw_undrawn'))
local n = math.min(math.max(1, tonumber(ARGV[1]) or 1), undrawn)
local drawn = 0
if n > 0 then
  local users = redis.call('ZRANGE', K_WAITING, 0, n - 1)
  local records = #users > 0 and redis.call('HMGET', K_ENTRANTS, unpack(users)) or {}
  -- The hot loop of a million-entrant draw: locals, no pattern matching.
  local sha1hex, sub, prefix = redis.sha1hex, string.sub, final .. ':'
  local scores, list = {}, {}
  for i = 1, #users do
    local record = records[i]
    -- (an entrant's record ends in its 32-hex-digit secret)
    if not record or sub(record, -33, -33) ~= ':' then
      undrawn = drawn -- not an entrant: no undrawn entrant is left behind it
      break
    end
    local hex = sub(sha1hex(prefix .. sub(record, -32)), 1, 13)
    -- (a number below 2^53: Redis reads it exactly)
    scores[2 * i - 1] = tonumber(hex, 16)
    scores[2 * i] = users[i]
    list[i] = hex
    drawn = i
  end
  for i = 1, 2 * drawn, 2000 do redis.call('ZADD', K_DRAWN, unpack(scores, i, math.min(i + 1999, 2 * drawn))) end
  if drawn > 0 then
    redis.call('ZREMRANGEBYRANK', K_WAITING, 0, drawn - 1)
    redis.call('APPEND', K_DRAWLIST, '+' .. table.concat(list, '+', 1, drawn))
  end
end
undrawn = math.max(0, undrawn - drawn)
if undrawn > 0 then
  redis.call('HSET', K_META, 'draw_undrawn', undrawn)
  return {0, drawn, 0}
end

redis.call('HSET', K_META, 'draw_state', DRAW_DONE, 'draw_undrawn', 0, 'draw_drawn', redis.call('ZCARD', K_DRAWN), 'draw_done_at', now)
ev.draw = DRAW_DONE
local promoted = fill(ev, now)
changed({{OP_DRAWN, final}, {OP_PROMOTED, #promoted}})
local result = {0, drawn, 1}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
