--[[
  Announce: sets the operator's message to everyone in the event's line (both
  empty: clears it) and tells every watcher (OP_ANNOUNCED).

  KEYS: see includes/event.lua
  ARGV[1] the message in Korean, ARGV[2] in English

  Returns {0} or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(nil, false)
if not ev then return refused end
if ARGV[1] == '' and ARGV[2] == '' then
  redis.call('HDEL', K_META, 'announce_ko', 'announce_en', 'announce_at')
else
  redis.call('HSET', K_META, 'announce_ko', ARGV[1], 'announce_en', ARGV[2], 'announce_at', now_ms())
end
changed({{OP_ANNOUNCED}})
return {0}
