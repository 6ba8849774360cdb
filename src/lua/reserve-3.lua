--[[
  Reserve: give the user a seat if one is free and nobody waits, else put them at
  the back of the queue. A known user is answered with their current state.

  KEYS[1] meta      hash: capacity, next_seq
  KEYS[2] reserved  set of users holding a seat
  KEYS[3] waiting   sorted set of waiting users, scored by join sequence (FIFO)

  ARGV[1] user id
  ARGV[2] capacity to store if the queue does not exist yet

  Returns {status, position, already_known}
    status   1 reserved, 2 queued
    position 1-based place in the queue when queued, else 0
    already_known 1 when the user was reserved or waiting before this call
]]
local meta, reserved, waiting = KEYS[1], KEYS[2], KEYS[3]
local user = ARGV[1]

if redis.call('SISMEMBER', reserved, user) == 1 then
  return {1, 0, 1}
end
-- ZRANK is O(log N): no scan of the queue.
local rank = redis.call('ZRANK', waiting, user)
if rank then
  return {2, rank + 1, 1}
end

local capacity = tonumber(redis.call('HGET', meta, 'capacity'))
if not capacity then
  capacity = tonumber(ARGV[2])
  redis.call('HSET', meta, 'capacity', capacity)
end

-- A free seat goes to a newcomer only when nobody is waiting: the queue is first.
if redis.call('ZCARD', waiting) == 0 and redis.call('SCARD', reserved) < capacity then
  redis.call('SADD', reserved, user)
  return {1, 0, 0}
end

local seq = redis.call('HINCRBY', meta, 'next_seq', 1)
redis.call('ZADD', waiting, seq, user)
return {2, redis.call('ZCARD', waiting), 0}
