--[[
  CreateEvent: stores a new event's settings.

  KEYS: see includes/event.lua
  ARGV[1] name, ARGV[2] capacity, ARGV[3] hold_seconds,
  ARGV[4] opens_at ms (0: none), ARGV[5] closes_at ms (0: none),
  ARGV[6] max_waiting ('': none of its own, the service's MAX_WAITING applies)
  ARGV[7] pow_difficulty (0: none)
  ARGV[8] prequeue_opens_at ms (0: the pre-queue opens at once)
  ARGV[9] draw_beacon_source ('' for none)
  ARGV[10], ARGV[11] a fresh draw seed and its commitment (includes/draw.lua),
          used when opens_at is ahead
  ARGV[12] admit_per_minute (0: unpaced)
  ARGV[13] presence_timeout_seconds (0: nobody is dropped)
  ARGV[14] max_party_size (1: one seat per Reserve)

  Returns {0} or {ERR_EVENT_EXISTS}
]]
--- @include "event"
--- @include "draw"

if redis.call('EXISTS', K_META) == 1 then return {ERR_EVENT_EXISTS} end
redis.call('HSET', K_META, 'name', ARGV[1], 'capacity', ARGV[2], 'hold_seconds', ARGV[3],
  'opens_at', ARGV[4], 'closes_at', ARGV[5], 'paused', 0, 'created_at', now_ms(), 'layout', LAYOUT,
  'pow_difficulty', ARGV[7], 'max_party_size', ARGV[14])
if ARGV[6] ~= '' then redis.call('HSET', K_META, 'max_waiting', ARGV[6]) end
if ARGV[8] ~= '0' then redis.call('HSET', K_META, 'prequeue_opens_at', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', K_META, 'draw_beacon_source', ARGV[9]) end
if ARGV[12] ~= '0' then redis.call('HSET', K_META, 'admit_per_minute', ARGV[12]) end
if ARGV[13] ~= '0' then redis.call('HSET', K_META, 'presence_timeout_seconds', ARGV[13]) end
if stored_time(ARGV[4]) > now_ms() then start_prequeue(ARGV[10], ARGV[11]) end
changed({{OP_SETTINGS}})
return {0}
