--[[
  Reset: every user of the event is removed and its totals start again; its
  settings stay.

  KEYS: see includes/event.lua
  ARGV[1] default event's capacity ('' for any other event)
  ARGV[2], ARGV[3] a fresh draw seed and its commitment: an event opening later
          starts a new pre-queue with them

  Returns {0, cleared_reserved, cleared_waiting} or {ERR_NO_EVENT}
]]
--- @include "event"
--- @include "draw"

local ev, refused = load_event(ARGV[1], false)
if not ev then return refused end
local seats = redis.call('HLEN', K_SEATS)
local waiting = line_length()
-- UNLINK frees a large queue in the background instead of blocking Redis.
redis.call('UNLINK', K_SEATS, K_WAITING, K_HOLDS, K_GONE, K_RATE, K_FEED, K_RETRIES, K_ENTRANTS, K_DRAWN, K_DRAWLIST, K_SEEN, K_PARTIES)
if ev.opens_at > now_ms() then start_prequeue(ARGV[2], ARGV[3]) else end_prequeue() end
redis.call('HDEL', K_META, 'joined_total', 'promoted_total', 'cancelled_total', 'expired_total', 'abandoned_total', 'admit_tat')
redis.call('HDEL', K_META, 'seats_extra', 'held_extra')
changed({{OP_RESET}})
return {0, seats, waiting}
