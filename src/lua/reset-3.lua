--[[
  Reset: remove every reserved and waiting user. The queue's settings (meta) stay.

  KEYS[1] meta      (kept)
  KEYS[2] reserved  set of users holding a seat
  KEYS[3] waiting   sorted set of waiting users

  Returns {cleared_reserved, cleared_waiting}
]]
local reserved, waiting = KEYS[2], KEYS[3]

local cleared_reserved = redis.call('SCARD', reserved)
local cleared_waiting = redis.call('ZCARD', waiting)
-- UNLINK frees a large queue in the background instead of blocking Redis.
redis.call('UNLINK', reserved, waiting)
return {cleared_reserved, cleared_waiting}
