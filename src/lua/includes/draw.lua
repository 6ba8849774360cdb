--[[
  The pre-queue and its draw (after --- @include "event").

  An event whose opens_at is ahead takes Reserve into a pre-queue (from
  prequeue_opens_at, when set). At opens_at its entrants are placed in a random
  order that anyone can check, ahead of everyone who joins after the opening.
  Meta fields:
    draw_state         DRAW_OPEN (taking entrants), DRAW_DRAWING, DRAW_DONE
    draw_seed          32 random bytes (hex), secret until the draw
    draw_commit        SHA-256 of the seed's bytes (hex), public from the start
    draw_chain         the chain head: starts as draw_commit; each entrant's join
                       makes it SHA1(chain hex .. user digest (8 bytes) .. SHA1(secret hex) hex)
    draw_beacon_source an announced public randomness round ('' for none)
    draw_beacon        its value, set after the opening; the draw waits for it
    draw_final         SHA1(seed hex .. ':' .. chain hex .. ':' .. beacon), hex
    draw_entrants      joins chained; draw_left: entrants who left before the draw
                       was done; draw_undrawn: entrants in line not yet drawn;
                       draw_drawn: entrants drawn (the published list's size)
    draw_done_at       ms

  An entrant's draw value is the first 13 hex digits (52 bits) of
  SHA1(draw_final hex .. ':' .. entry secret hex), read as an integer; drawn
  entrants wait in `drawn` by it, ahead of everyone in `waiting` (equal values,
  about one pair in 9,000 draws of a million entrants, by user id).
  SHA-1 because Redis 7.0's Lua has redis.sha1hex and nothing newer; what makes
  the draw unpredictable is the secret 256-bit seed, not the hash's strength.
]]

-- A new pre-queue: a new commitment, no entrants.
local function start_prequeue(seed, commit)
  redis.call('HDEL', K_META, 'draw_final', 'draw_beacon', 'draw_entrants', 'draw_left', 'draw_undrawn', 'draw_drawn', 'draw_done_at')
  redis.call('UNLINK', K_DRAWLIST)
  -- (older scripts would seat entrants before the draw: they must refuse this event)
  redis.call('HSET', K_META, 'draw_state', DRAW_OPEN, 'draw_seed', seed, 'draw_commit', commit, 'draw_chain', commit, 'layout', LAYOUT)
end

-- No pre-queue (the event opens at once); the announced beacon source stays a setting.
local function end_prequeue()
  redis.call('HDEL', K_META, 'draw_state', 'draw_seed', 'draw_commit', 'draw_chain', 'draw_final', 'draw_beacon',
    'draw_entrants', 'draw_left', 'draw_undrawn', 'draw_drawn', 'draw_done_at')
end

-- The draw is due (or under way) at `now`.
local function draw_due(ev, now)
  return ev.draw == DRAW_DRAWING or (ev.draw == DRAW_OPEN and (ev.opens_at == 0 or now >= ev.opens_at))
end

-- A drawlist record: '+' (drawn) or '-' (left before the draw was done), and the value in 13 hex digits.
local function drawlist_record(sign, value)
  return sign .. string.format('%013x', value)
end
