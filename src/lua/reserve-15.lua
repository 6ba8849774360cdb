--[[
  Reserve: a seat if one is free and nobody waits, else the back of the queue.
  A known user (seated or waiting) gets their state back and nothing changes; a
  cancelled or expired user joins again as a new entry, unless the call repeats
  the idempotency key of the entry that ended (then it gets the ended state).

  KEYS[1..14]: see includes/event.lua
  KEYS[15] the solved challenge's key (marks it used; its own TTL), or a
           placeholder when the Reserve carries none
  ARGV[1] user id
  ARGV[2] capacity to create the default event with ('' for any other event)
  ARGV[3] max_waiting of an event without its own (0: no limit)
  ARGV[4] digest of the user (the field in K_RETRIES): 8 bytes as 16 hex digits
  ARGV[5] digest of the call's idempotency key ('' for none): 8 bytes as 16 hex digits
  ARGV[6] '1' when the Reserve carries a verified solution of a challenge, else ''
  ARGV[7] ms until that challenge expires
  ARGV[8] a fresh random entry secret (32 hex digits), kept if the user enters a pre-queue
  ARGV[9] party size (seats the entry takes at once; at most the event's max_party_size)

  Returns {0, status, position, promoted, hold_expires_ms, seq, already_known, same_key,
           entry_secret ('' unless an entrant of a pre-queue), opens_at_ms,
           final_seed (a drawn entrant's draw, else ''), party_size}
          (same_key 1: the user's entry was made with this idempotency key)
       or {ERR_NO_EVENT}, {ERR_NOT_OPEN_YET, opens_at_ms (or prequeue_opens_at_ms)}, {ERR_PAUSED},
          {ERR_CLOSED, closes_at_ms}, {ERR_QUEUE_FULL, max_waiting},
          {ERR_CHALLENGE_REQUIRED, pow_difficulty}, {ERR_CHALLENGE_USED},
          {ERR_PARTY_TOO_LARGE, max_party_size}
]]
--- @include "event"
--- @include "draw"
--- @include "presence"

local user = ARGV[1]
local ev, refused = load_event(ARGV[2], false)
if not ev then return refused end

-- The digests come as hex and are stored as their 8 bytes. Hex because one binary
-- argument makes the client copy every argument of the call into a buffer (4 µs
-- of its CPU per Reserve); decoded only on the paths that use them.
local function from_hex(h)
  return (string.gsub(h, '%x%x', function(c) return string.char(tonumber(c, 16)) end))
end
local user_digest_bytes
local function user_digest()
  user_digest_bytes = user_digest_bytes or from_hex(ARGV[4])
  return user_digest_bytes
end

-- Proof of work: a solution is good for one user; that user may send it again (a retry).
if ev.pow_difficulty > 0 then
  if ARGV[6] ~= '1' then return {ERR_CHALLENGE_REQUIRED, ev.pow_difficulty} end
  local used_by = redis.call('GET', KEYS[15])
  if used_by and used_by ~= user_digest() then return {ERR_CHALLENGE_USED} end
  if not used_by then redis.call('SET', KEYS[15], user_digest(), 'PX', math.max(1, tonumber(ARGV[7]))) end
end

local state = user_state(user, ev)
local key = from_hex(ARGV[5])
local same_key = key ~= '' and state[1] ~= ST_NOT_FOUND and redis.call('HGET', K_RETRIES, user_digest()) == key
if state[1] == ST_RESERVED or state[1] == ST_QUEUED or state[1] == ST_PREQUEUED or same_key then
  -- Seated or waiting: the state as it is. Ended, and this is a retry of the call
  -- that made the entry: the ended state, without joining again.
  local final = state[6] ~= '' and ev.draw == DRAW_DONE and redis.call('HGET', K_META, 'draw_final') or ''
  return {0, state[1], state[2], state[3], state[4], state[5], 1, same_key and 1 or 0, state[6], ev.opens_at, final, state[7]}
end

local size = math.max(1, tonumber(ARGV[9]) or 1)
if size > ev.max_party_size then return {ERR_PARTY_TOO_LARGE, ev.max_party_size} end
local now = now_ms()
-- Before opens_at: the pre-queue (from prequeue_opens_at), or nothing.
local prequeue = ev.draw == DRAW_OPEN and ev.opens_at > 0 and now < ev.opens_at
if prequeue and now < ev.prequeue_opens_at then return {ERR_NOT_OPEN_YET, ev.prequeue_opens_at} end
if not prequeue and ev.opens_at > 0 and now < ev.opens_at then return {ERR_NOT_OPEN_YET, ev.opens_at} end
if ev.paused then return {ERR_PAUSED} end
if ev.closes_at > 0 and now >= ev.closes_at then return {ERR_CLOSED, ev.closes_at} end

-- A free seat goes to a newcomer only when nobody waits: the queue comes first.
local waiting = line_length()
local seat_free = not prequeue and waiting == 0 and seats_taken() + size <= ev.capacity and admissible(ev, now) >= 1
local max_waiting = ev.max_waiting or stored_number(ARGV[3])
if not seat_free and max_waiting > 0 and waiting >= max_waiting then return {ERR_QUEUE_FULL, max_waiting} end

redis.call('HDEL', K_GONE, user)
-- The new entry's key replaces an ended entry's (a brand-new user has none to clear).
if key ~= '' then
  redis.call('HSET', K_RETRIES, user_digest(), key)
elseif state[1] ~= ST_NOT_FOUND then
  redis.call('HDEL', K_RETRIES, user_digest())
end
local seq = add_to(K_META, 'next_seq', 1)
if size > 1 then redis.call('HSET', K_PARTIES, user, size) else redis.call('HDEL', K_PARTIES, user) end
add_to(K_META, 'joined_total', 1)

if seat_free then
  admitted(ev, now, 1)
  redis.call('HSET', K_SEATS, user, seq)
  if size > 1 then add_to(K_META, 'seats_extra', size - 1) end
  local hold = 0
  if ev.hold_ms > 0 then
    hold = now + ev.hold_ms
    redis.call('ZADD', K_HOLDS, hold, user)
    if size > 1 then add_to(K_META, 'held_extra', size - 1) end
  end
  changed({{OP_SEAT, user}})
  return {0, ST_RESERVED, 0, 0, hold, seq, 0, 0, '', ev.opens_at, '', size}
end

redis.call('ZADD', K_WAITING, seq, user)
seen(ev, now, user)
changed({{OP_JOINED, user}})
if not prequeue then return {0, ST_QUEUED, waiting + 1, 0, 0, seq, 0, 0, '', ev.opens_at, '', size} end

-- An entrant: its secret, and the chain that freezes who entered.
local secret = ARGV[8]
redis.call('HSET', K_ENTRANTS, user, seq .. ':' .. secret)
local chain = redis.call('HGET', K_META, 'draw_chain') or ''
redis.call('HSET', K_META, 'draw_chain', redis.sha1hex(chain .. user_digest() .. redis.sha1hex(secret)))
add_to(K_META, 'draw_entrants', 1)
add_to(K_META, 'draw_undrawn', 1)
return {0, ST_PREQUEUED, 0, 0, 0, seq, 0, 0, secret, ev.opens_at, '', size}
