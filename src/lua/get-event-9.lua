#!lua flags=no-writes
--[[
  GetEvent: an event's settings and live counts. Read-only, O(1).

  KEYS: see includes/event.lua
  ARGV[1] default event's capacity ('' for any other event)

  Returns {0, name, capacity, hold_seconds, opens_at, closes_at, paused,
           seats, held, waiting, joined, promoted, cancelled, expired, now_ms, version,
           max_waiting ('' when the event has none of its own), pow_difficulty}
       or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(ARGV[1], true)
if not ev then return refused end
local m = redis.call('HMGET', K_META, 'name', 'joined_total', 'promoted_total', 'cancelled_total', 'expired_total', 'version')
local own_max = ev.max_waiting and ev.max_waiting or ''
return {0, m[1] or 'default', ev.capacity, ev.hold_ms / 1000, ev.opens_at, ev.closes_at, ev.paused and 1 or 0,
  redis.call('HLEN', K_SEATS), redis.call('ZCARD', K_HOLDS), redis.call('ZCARD', K_WAITING),
  stored_number(m[2]), stored_number(m[3]), stored_number(m[4]), stored_number(m[5]), now_ms(), stored_number(m[6]), own_max, ev.pow_difficulty}
