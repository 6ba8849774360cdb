#!lua flags=no-writes
--[[
  Status: where a user stands. Read-only; one script so that a user promoted
  between the two lookups is never reported as unknown.

  KEYS[1] meta      (unused; passed so every script names the whole queue)
  KEYS[2] reserved  set of users holding a seat
  KEYS[3] waiting   sorted set of waiting users, scored by join sequence

  ARGV[1] user id

  Returns {status, position}
    status   1 reserved, 2 queued, 3 not found
    position 1-based place in the queue when queued, else 0
]]
local reserved, waiting = KEYS[2], KEYS[3]
local user = ARGV[1]

if redis.call('SISMEMBER', reserved, user) == 1 then
  return {1, 0}
end
local rank = redis.call('ZRANK', waiting, user)
if rank then
  return {2, rank + 1}
end
return {3, 0}
