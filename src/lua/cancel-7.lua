--[[
  Cancel: a seated user frees the seat and the head of the queue takes it in
  this same step; a waiting user leaves and everyone behind moves up one.
  Repeating a cancel changes nothing.

  KEYS: see includes/event.lua
  ARGV[1] user id
  ARGV[2] the ticket's entry seq, or '' for an operator (no ticket)

  Returns {0, status, already_cancelled, promoted ids...}
    status 4 cancelled, 5 expired (unchanged), 3 not found
       or {-1} no such event, {-5} the ticket is for another entry of this user
]]
--- @include "event"

local user, ticket_seq = ARGV[1], ARGV[2]
local ev = load_event(nil, false)
if not ev then return {ERR_NO_EVENT} end

local state = user_state(user)
local status, seq = state[1], state[5]
if status == 3 then return {0, 3, 0} end
if ticket_seq ~= '' and tonumber(ticket_seq) ~= seq then return {-5} end
if status == 4 then return {0, 4, 1} end
if status == 5 then return {0, 5, 0} end

redis.call('HSET', K_GONE, user, 'C' .. seq)
add_to(K_META, 'cancelled_total', 1)
local result = {0, 4, 0}
if status == 1 then
  redis.call('HDEL', K_SEATS, user)
  redis.call('ZREM', K_HOLDS, user)
  feed('C', user)
  local promoted = fill(ev, now_ms())
  for _, id in ipairs(promoted) do result[#result + 1] = id end
  changed({{'S', user}, {'P', #promoted}})
else
  redis.call('ZREM', K_WAITING, user)
  changed({{'L', state[2], user}})
end
return result
