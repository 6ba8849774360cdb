--[[
  Confirm: an unconfirmed hold becomes a final seat.

  KEYS: see includes/event.lua
  ARGV[1] user id
  ARGV[2] the ticket's entry seq

  Returns {0, already_confirmed}
       or {-1} no such event, {-5} the ticket is for another entry,
          {-6, position} still queued, {-7} cancelled, {-8} hold expired,
          {-9} no such user
]]
--- @include "event"

local user, ticket_seq = ARGV[1], ARGV[2]
local ev = load_event(nil, false)
if not ev then return {ERR_NO_EVENT} end

local state = user_state(user)
local status = state[1]
if status == 3 then return {-9} end
if tonumber(ticket_seq) ~= state[5] then return {-5} end
if status == 2 then return {-6, state[2]} end
if status == 4 then return {-7} end
if status == 5 then return {-8} end

local hold = state[4]
if hold == 0 then return {0, 1} end
-- Past its time but not yet swept: it is expired all the same.
if hold <= now_ms() then return {-8} end
redis.call('ZREM', K_HOLDS, user)
changed({{'S', user}})
return {0, 0}
