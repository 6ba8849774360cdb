#!lua flags=no-writes
--[[
  GetEvent: an event's settings and live counts. Read-only, O(1).

  KEYS: see includes/event.lua
  ARGV[1] default event's capacity ('' for any other event)

  Returns {0, name, capacity, hold_seconds, opens_at, closes_at, paused,
           seats, held, waiting, joined, promoted, cancelled, expired, now_ms, version,
           max_waiting ('' when the event has none of its own), pow_difficulty,
           draw_state, draw_commit, draw_seed, draw_chain, draw_final (the last three
           '' until the draw is done: the seed is secret until then), draw_beacon_source,
           draw_beacon, draw_entrants, draw_left, draw_drawn, draw_done_at, prequeue_opens_at,
           admit_per_minute, presence_timeout_seconds, abandoned_total, max_party_size,
           announce_ko, announce_en, announce_at}
  (seats and held count seats, a party's as many as its size)
       or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(ARGV[1], true)
if not ev then return refused end
local m = redis.call('HMGET', K_META, 'name', 'joined_total', 'promoted_total', 'cancelled_total', 'expired_total', 'version')
local own_max = ev.max_waiting and ev.max_waiting or ''
local d = redis.call('HMGET', K_META, 'draw_commit', 'draw_seed', 'draw_chain', 'draw_final', 'draw_beacon_source', 'draw_beacon',
  'draw_entrants', 'draw_left', 'draw_drawn', 'draw_done_at', 'abandoned_total', 'announce_ko', 'announce_en', 'announce_at')
local done = ev.draw == DRAW_DONE
return {0, m[1] or 'default', ev.capacity, ev.hold_ms / 1000, ev.opens_at, ev.closes_at, ev.paused and 1 or 0,
  seats_taken(), seats_held(), line_length(),
  stored_number(m[2]), stored_number(m[3]), stored_number(m[4]), stored_number(m[5]), now_ms(), stored_number(m[6]), own_max, ev.pow_difficulty,
  ev.draw, d[1] or '', done and d[2] or '', done and d[3] or '', done and d[4] or '', d[5] or '', d[6] or '',
  stored_number(d[7]), stored_number(d[8]), stored_number(d[9]), stored_number(d[10]), ev.prequeue_opens_at, ev.admit_per_minute,
  ev.presence_ms / 1000, stored_number(d[11]), ev.max_party_size,
  d[12] or '', d[13] or '', stored_time(d[14])}
