--[[
  Expire holds: every hold past its time ends (the user is EXPIRED) and the
  freed seats go to the head of the queue, in one step. In a paced event, the
  seats the pace held back go as it allows. Idempotent: any worker may run it
  at any time.

  KEYS: see includes/event.lua
  ARGV[1] most holds to expire in one call

  Returns {0, expired_count, draw_due, promoted ids...} or {ERR_NO_EVENT}
  (draw_due 1: the event's pre-queue draw is due or under way: run draw-12.lua)
]]
--- @include "event"
--- @include "draw"

local ev, refused = load_event(nil, false)
if not ev then return refused end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K_HOLDS, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local draw = draw_due(ev, now) and 1 or 0
if #due == 0 then
  local promoted = ev.admit_per_minute > 0 and fill(ev, now) or {}
  if #promoted > 0 then changed({{OP_PROMOTED, #promoted}}) end
  local result = {0, 0, draw}
  for _, id in ipairs(promoted) do result[#result + 1] = id end
  return result
end

local ops = {}
for _, user in ipairs(due) do
  ops[#ops + 1] = {OP_SEAT, user}
  local seat = redis.call('HGET', K_SEATS, user)
  redis.call('ZREM', K_HOLDS, user)
  if seat then
    redis.call('HDEL', K_SEATS, user)
    redis.call('HSET', K_GONE, user, GONE_EXPIRED .. string.match(seat, '^(%d+)'))
    feed(FEED_EXPIRED, user)
  end
end
add_to(K_META, 'expired_total', #due)
local promoted = fill(ev, now)
ops[#ops + 1] = {OP_PROMOTED, #promoted}
changed(ops)
local result = {0, #due, draw}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
