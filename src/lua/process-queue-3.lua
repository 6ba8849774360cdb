--[[
  ProcessQueue: move the first min(free seats, waiting) users of the queue, in
  FIFO order, into seats.

  KEYS[1] meta      hash: capacity, next_seq
  KEYS[2] reserved  set of users holding a seat
  KEYS[3] waiting   sorted set of waiting users, scored by join sequence

  ARGV[1] capacity to store if the queue does not exist yet

  Returns the promoted user ids, in the order they waited.
]]
local meta, reserved, waiting = KEYS[1], KEYS[2], KEYS[3]

local capacity = tonumber(redis.call('HGET', meta, 'capacity'))
if not capacity then
  capacity = tonumber(ARGV[1])
  redis.call('HSET', meta, 'capacity', capacity)
end

local free = capacity - redis.call('SCARD', reserved)
if free <= 0 then
  return {}
end

-- ZPOPMIN answers {member, score, member, score, ...} lowest score (earliest) first.
local popped = redis.call('ZPOPMIN', waiting, free)
local promoted = {}
for i = 1, #popped, 2 do
  local user = popped[i]
  redis.call('SADD', reserved, user)
  promoted[#promoted + 1] = user
end
return promoted
