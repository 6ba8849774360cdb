#!lua flags=no-writes
--[[
  ListSeatHolders: one page of the seats hash, with each seat's hold. Read-only.
  HSCAN's guarantee holds: a seat held from the first page to the last is
  returned at least once (possibly twice).

  KEYS: see includes/event.lua
  ARGV[1] HSCAN cursor ('0' for the first page)
  ARGV[2] page size hint (HSCAN COUNT)
  ARGV[3] default event's capacity ('' for any other event)

  Returns {0, next_cursor, user, seq, hold_expires_ms, seats, user, seq, hold_expires_ms, seats, ...}
          (next_cursor '0' on the last page; hold_expires_ms 0 when confirmed)
       or {ERR_NO_EVENT}
]]
--- @include "event"

local ev, refused = load_event(ARGV[3], true)
if not ev then return refused end
local page = redis.call('HSCAN', K_SEATS, ARGV[1], 'COUNT', tonumber(ARGV[2]))
local reply = {0, page[1]}
local fields = page[2]
if #fields == 0 then return reply end
-- Every seat's hold in one ZMSCORE (nil where the seat is confirmed).
local users = {}
for i = 1, #fields, 2 do users[#users + 1] = fields[i] end
local holds = redis.call('ZMSCORE', K_HOLDS, unpack(users))
local parties = redis.call('HMGET', K_PARTIES, unpack(users))
for j, user in ipairs(users) do
  reply[#reply + 1] = user
  reply[#reply + 1] = tonumber((string.gsub(fields[2 * j], 'p$', '')))
  reply[#reply + 1] = tonumber(holds[j] or '0')
  reply[#reply + 1] = tonumber(parties[j] or '1') or 1
end
return reply
