--[[
  Cancel: a seated user frees the seat and the head of the queue takes it in
  this same step; a waiting user leaves and everyone behind moves up one.
  Repeating a cancel changes nothing.

  KEYS: see includes/event.lua
  ARGV[1] user id
  ARGV[2] the ticket's entry seq, or '' for an operator (no ticket)

  Returns {0, status, already_cancelled, promoted ids...}
    status ST_CANCELLED, ST_EXPIRED or ST_ABANDONED (unchanged), or ST_NOT_FOUND
       or {ERR_NO_EVENT}, {ERR_TICKET_STALE} the ticket is for another entry of this user
]]
--- @include "event"
--- @include "draw"

local user, ticket_seq = ARGV[1], ARGV[2]
local ev, refused = load_event(nil, false)
if not ev then return refused end

local state = user_state(user, ev)
local status, seq = state[1], state[5]
if status == ST_NOT_FOUND then return {0, ST_NOT_FOUND, 0} end
if ticket_seq ~= '' and tonumber(ticket_seq) ~= seq then return {ERR_TICKET_STALE} end
if status == ST_CANCELLED then return {0, ST_CANCELLED, 1} end
if status == ST_EXPIRED or status == ST_ABANDONED then return {0, status, 0} end

redis.call('HSET', K_GONE, user, GONE_CANCELLED .. seq)
add_to(K_META, 'cancelled_total', 1)
local result = {0, ST_CANCELLED, 0}
if status == ST_RESERVED then
  free_seat(user, state[4] > 0)
  feed(FEED_CANCELLED, user)
  local promoted = fill(ev, now_ms())
  for _, id in ipairs(promoted) do result[#result + 1] = id end
  changed({{OP_SEAT, user}, {OP_PROMOTED, #promoted}})
else
  local position = place_in_line(user)
  local value = redis.call('ZSCORE', K_DRAWN, user)
  redis.call('ZREM', K_DRAWN, user)
  redis.call('ZREM', K_WAITING, user)
  redis.call('ZREM', K_SEEN, user)
  redis.call('HDEL', K_PARTIES, user)
  -- An entrant leaving before the draw is done leaves it too: the drawlist then
  -- adds up to the entrants in line when it was done.
  if redis.call('HDEL', K_ENTRANTS, user) == 1 and ev.draw ~= DRAW_DONE then
    add_to(K_META, 'draw_left', 1)
    if value then redis.call('APPEND', K_DRAWLIST, drawlist_record('-', tonumber(value))) else add_to(K_META, 'draw_undrawn', -1) end
  end
  -- (the head party may have been waiting for room that a smaller one behind it now fits)
  local promoted = fill(ev, now_ms())
  for _, id in ipairs(promoted) do result[#result + 1] = id end
  changed({{OP_LEFT, position, user}, {OP_PROMOTED, #promoted}})
end
return result
