#!lua flags=no-writes
--[[
  Status: where a user stands, with the event's recent promotion count for a
  wait estimate. Read-only, O(log N).

  KEYS: see includes/event.lua
  ARGV[1] user id
  ARGV[2] default event's capacity ('' for any other event)

  Returns {0, status, position, promoted, hold_expires_ms, seq, version,
           promoted_in_window, window_ms, entry_secret, opens_at_ms, final_seed, admit_per_minute,
           party_size}
          (entry_secret: an entrant of a pre-queue's; final_seed: a drawn entrant's draw, else '')
       or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(ARGV[2], true)
if not ev then return refused end
local state = user_state(ARGV[1], ev)

-- Promotions in the last RATE_BUCKETS buckets, the current one excluded (it is partial).
local now = now_ms()
local current = math.floor(now / RATE_BUCKET_MS)
local fields = {}
for b = current - RATE_BUCKETS + 1, current - 1 do fields[#fields + 1] = b end
local counts = redis.call('HMGET', K_RATE, unpack(fields))
local promoted, first = 0, nil
for i, c in ipairs(counts) do
  if c then
    promoted = promoted + tonumber(c)
    first = first or i
  end
end
local window_ms = first and (#fields - first + 1) * RATE_BUCKET_MS or 0
local version = tonumber(redis.call('HGET', K_META, 'version') or '0')
local final = state[6] ~= '' and ev.draw == DRAW_DONE and redis.call('HGET', K_META, 'draw_final') or ''
return {0, state[1], state[2], state[3], state[4], state[5], version, promoted, window_ms, state[6], ev.opens_at, final, ev.admit_per_minute, state[7]}
