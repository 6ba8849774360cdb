--[[
  Touch: the users a process saw (a GetStatus, an open WatchStatus stream) are
  still there, in one call for many (includes/presence.lua). Only users already
  tracked (waiting in an event with a presence timeout) are updated.

  KEYS: see includes/event.lua
  ARGV[1..] user ids

  Returns {0, presence_timeout_ms (0: the event drops nobody; nothing written)}
       or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(nil, false)
if not ev then return refused end
if ev.presence_ms <= 0 then return {0, 0} end
local now = now_ms()
local args = {}
for i, user in ipairs(ARGV) do
  args[2 * i - 1] = now
  args[2 * i] = user
end
for i = 1, #args, 2000 do redis.call('ZADD', K_SEEN, 'XX', 'GT', unpack(args, i, math.min(i + 1999, #args))) end
return {0, ev.presence_ms}
