--[[
  Expire holds: every hold past its time ends (the user is EXPIRED) and the
  freed seats go to the head of the queue, in one step. In a paced event, the
  seats the pace held back go as it allows; in an event with a presence
  timeout, walk-aways leave the line (includes/presence.lua). Idempotent: any
  worker may run it at any time.

  One sweeper at a time per event: the workers' sweepers (src/queue/hold-sweeper.ts)
  pass their id, and the first to come holds the event's sweep for ARGV[3] ms
  (meta's sweeper and sweeper_until), renewed as it sweeps. The others get
  only the time left and ask again then, so an event is swept once per
  interval however many workers run, and by another within the lease when its
  sweeper stops without letting go (release-sweep-14.lua). Without an id (an
  operator, a test) the call always sweeps.

  KEYS: see includes/event.lua
  ARGV[1] most holds (and most walk-aways) to end in one call
  ARGV[2] the sweeper's id ('' or absent: sweep regardless)
  ARGV[3] ms a sweeper holds the event's sweep once it took it

  Returns {0, expired_count, draw_due, abandoned_count, lease_wait_ms, promoted ids...} or {ERR_NO_EVENT}
  (draw_due 1: the event's pre-queue draw is due or under way: run draw-14.lua;
  lease_wait_ms > 0: another sweeper holds the event, nothing was done, ask again then)
]]
--- @include "event"
--- @include "draw"
--- @include "presence"

local now = now_ms()
local sweeper, lease_ms = ARGV[2] or '', tonumber(ARGV[3] or '0') or 0
local lease = sweeper ~= '' and redis.call('HMGET', K_META, 'sweeper', 'sweeper_until')
-- A lease further off than this caller's own would run is not believed (Redis's clock stepped
-- back, a hand edit): the event would go unswept until then.
local wait = lease and stored_number(lease[2]) - now or 0
if lease and lease[1] ~= sweeper and wait > 0 and wait <= lease_ms then return {0, 0, 0, 0, wait} end
local ev, refused = load_event(nil, false)
if not ev then return refused end
-- Taken, or renewed once half of it is gone: a write a second, not one a sweep.
if lease and (lease[1] ~= sweeper or stored_number(lease[2]) - now < lease_ms / 2) then
  redis.call('HSET', K_META, 'sweeper', sweeper, 'sweeper_until', now + lease_ms)
end
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
local result = {0, #due, draw_due(ev, now) and 1 or 0, #walked, 0}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
