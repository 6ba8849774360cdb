--[[
  Release sweep: a worker's sweeper that stops lets go of an event's sweep it
  holds (expire-holds-14.lua's lease), so another worker sweeps the event at
  its next tick instead of when the lease runs out. Only its own lease goes.

  KEYS: see includes/event.lua (only meta is touched)
  ARGV[1] the sweeper's id

  Returns {0, released (1 or 0)}
]]
--- @include "event"

if redis.call('HGET', K_META, 'sweeper') ~= ARGV[1] then return {0, 0} end
redis.call('HDEL', K_META, 'sweeper', 'sweeper_until')
return {0, 1}
