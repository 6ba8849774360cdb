--[[
  UpdateEvent: changes settings, then gives any seats a raised capacity freed to
  the head of the queue. Lowering the capacity takes no seat back.
  The pre-queue: moving opens_at before the draw keeps it (and its commitment);
  clearing opens_at makes the draw due at once; once the draw is due or under
  way, opens_at, prequeue_opens_at and draw_beacon_source no longer change. An
  empty event given an opens_at ahead starts a pre-queue. draw_beacon (the
  announced round's value) is taken once, after the opening and before the draw.

  KEYS: see includes/event.lua
  ARGV[1], ARGV[2] a fresh draw seed and its commitment (used if a pre-queue starts)
  ARGV[3..] pairs: field, value (fields: name, capacity, hold_seconds, paused,
  opens_at, closes_at, max_waiting, pow_difficulty, prequeue_opens_at,
  draw_beacon_source, draw_beacon, admit_per_minute, presence_timeout_seconds,
  max_party_size;
  times in ms, 0 for none)

  Returns {0, promoted ids...}
       or {ERR_NO_EVENT}, {ERR_DRAW_STARTED}, {ERR_NO_BEACON_EXPECTED},
          {ERR_PARTY_EXCEEDS_CAPACITY, size} a waiting party would never fit the new capacity
]]
--- @include "event"
--- @include "draw"

local ev, refused = load_event(nil, false)
if not ev then return refused end
local now = now_ms()
local pairs_ = {}
local changes = {}
for i = 3, #ARGV, 2 do
  changes[ARGV[i]] = ARGV[i + 1]
  pairs_[#pairs_ + 1] = ARGV[i]
  pairs_[#pairs_ + 1] = ARGV[i + 1]
end

-- Clearing opens_at when the draw is due changes nothing; any other move would.
if draw_due(ev, now) and (changes.prequeue_opens_at or changes.draw_beacon_source or (changes.opens_at and changes.opens_at ~= '0')) then
  return {ERR_DRAW_STARTED}
end
if changes.draw_beacon then
  local source = redis.call('HGET', K_META, 'draw_beacon_source') or ''
  if source == '' or ev.draw ~= DRAW_OPEN or now < ev.opens_at then return {ERR_NO_BEACON_EXPECTED} end
  if (redis.call('HGET', K_META, 'draw_beacon') or '') ~= '' then return {ERR_DRAW_STARTED} end
end

-- A lower capacity must still seat every waiting party: the head one waits for room, and nobody passes it.
if changes.capacity then
  local parties = redis.call('HGETALL', K_PARTIES)
  for i = 1, #parties, 2 do
    local size = tonumber(parties[i + 1]) or 1
    if size > (tonumber(changes.capacity) or 0) and place_in_line(parties[i]) then return {ERR_PARTY_EXCEEDS_CAPACITY, size} end
  end
end

if #pairs_ > 0 then
  -- Older scripts must not act on settings they do not know (pow_difficulty, the draw).
  redis.call('HSET', K_META, 'layout', LAYOUT, unpack(pairs_))
  -- A new pace starts now: the old one's schedule would hold seats back (or let a burst through).
  if changes.admit_per_minute then redis.call('HDEL', K_META, 'admit_tat') end
  ev = load_event(nil, false)
end
-- An event nobody has entered, opening later: its line starts as a pre-queue.
if ev.draw ~= DRAW_OPEN and ev.draw ~= DRAW_DRAWING and ev.opens_at > now
   and redis.call('HLEN', K_SEATS) == 0 and line_length() == 0 then
  start_prequeue(ARGV[1], ARGV[2])
  ev.draw = DRAW_OPEN
end
local promoted = fill(ev, now)
-- The beacon moves nobody: no watcher needs to re-read for it (a million would, at the opening).
local only_beacon = #pairs_ == 2 and changes.draw_beacon
if not only_beacon or #promoted > 0 then changed({{OP_SETTINGS}, {OP_PROMOTED, #promoted}}) end
local result = {0}
for _, id in ipairs(promoted) do result[#result + 1] = id end
return result
