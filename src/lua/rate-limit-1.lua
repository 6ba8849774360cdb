--[[
  Rate limit (GCRA): may this caller make one more call? A burst of `limit`
  calls is allowed, refilled evenly over `period_ms`. One key per caller; it
  expires once the caller is idle.

  KEYS[1] the caller's limit key (holds the theoretical arrival time, ms)
  ARGV[1] limit (calls per period), ARGV[2] period_ms
  ARGV[3] '1' (or absent): count the call when allowed; '0': only tell whether
          one would be allowed (failed admin logins are counted after the fact)

  Returns {1, 0} allowed, or {0, retry_after_ms}
]]
local key = KEYS[1]
local limit, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = period / limit
local tat = tonumber(redis.call('GET', key) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local over = next_tat - now - period
if over > 0 then
  return {0, math.ceil(over)}
end
if ARGV[3] ~= '0' then redis.call('SET', key, next_tat, 'PX', math.ceil(next_tat - now)) end
return {1, 0}
