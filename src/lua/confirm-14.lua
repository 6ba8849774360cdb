--[[
  Confirm: an unconfirmed hold becomes a final seat.

  KEYS: see includes/event.lua
  ARGV[1] user id
  ARGV[2] the ticket's entry seq, or '' for the user's current entry (no ticket:
          the caller proved it is the user)

  Returns {0, already_confirmed}
       or {ERR_NO_EVENT}, {ERR_TICKET_STALE} the ticket is for another entry,
          {ERR_STILL_QUEUED, position}, {ERR_USER_CANCELLED}, {ERR_HOLD_EXPIRED},
          {ERR_NO_ENTRY} no such user, {ERR_ABANDONED} left the line (a walk-away)
]]
--- @include "event"

local user, ticket_seq = ARGV[1], ARGV[2]
local ev, refused = load_event(nil, false)
if not ev then return refused end

local state = user_state(user, ev)
local status = state[1]
if status == ST_NOT_FOUND then return {ERR_NO_ENTRY} end
if ticket_seq ~= '' and tonumber(ticket_seq) ~= state[5] then return {ERR_TICKET_STALE} end
if status == ST_QUEUED or status == ST_PREQUEUED then return {ERR_STILL_QUEUED, state[2]} end
if status == ST_CANCELLED then return {ERR_USER_CANCELLED} end
if status == ST_EXPIRED then return {ERR_HOLD_EXPIRED} end
if status == ST_ABANDONED then return {ERR_ABANDONED} end

local hold = state[4]
if hold == 0 then return {0, 1} end
-- Past its time but not yet swept: it is expired all the same.
if hold <= now_ms() then return {ERR_HOLD_EXPIRED} end
redis.call('ZREM', K_HOLDS, user)
if state[7] > 1 then add_to(K_META, 'held_extra', 1 - state[7]) end
changed({{OP_SEAT, user}})
return {0, 0}
