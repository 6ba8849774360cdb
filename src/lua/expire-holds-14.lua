--[[
  Expire holds: every hold past its time ends (the user is EXPIRED) and the
  freed seats go to the head of the queue, in one step. In a paced event, the
  seats the pace held back go as it allows; in an event with a presence
  timeout, walk-aways leave the line (includes/presence.lua). Idempotent: any
  worker may run it at any time.

  KEYS: see includes/event.lua
  ARGV[1] most holds (and most walk-aways) to end in one call

  Returns {0, expired_count, draw_due, abandoned_count, promoted ids...} or {ERR_NO_EVENT}
  (draw_due 1: the event's pre-queue draw is due or under way: run draw-14.lua)
]]
--- @include "event"
--- @include "draw"
--- @include "presence"

local ev, refused = load_event(nil, false)
if not ev then return refused end
local now = now_ms()
local max = tonumber(ARGV[1])
local ops = {}
local due = redis.call('ZRANGEBYSCORE', K_HOLDS, '-inf', now, 'LIMIT', 0, max)
for _, user in ipairs(due) do
  ops[#ops + 1] = {OP_SEAT, user}
  local seat = redis.call('HGET', K_SEATS, user)
  if seat then
    free_seat(user, true)
    redis.call('HSET', K_GONE, user, GONE_EXPIRED .. string.match(seat, '^(%d+)'))
    feed(FEED_EXPIRED, user)
  else
    redis.call('ZREM', K_HOLDS, user)
  end
end
if #due > 0 then add_to(K_META, 'expired_total', #due) end
local walked = drop_walk_aways(ev, now, max)
for _, op in ipairs(walked) do ops[#ops + 1] = op end

local promoted = {}
-- (also seats left free by the pace, or by a fill that stopped at PROMOTE_MAX)
if ev.fill_more then redis.call('HDEL', K_META, 'fill_more') end
if #due > 0 or #walked > 0 or ev.admit_per_minute > 0 or ev.fill_more then promoted = fill(ev, now) end
if #due > 0 or #promoted > 0 then ops[#ops + 1] = {OP_PROMOTED, #promoted} end
if #ops > 0 then changed(ops) end
local result = {0, #due, draw_due(ev, now) and 1 or 0, #walked}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
