--[[
  Walk-aways (after --- @include "event"): in an event with
  presence_timeout_seconds, a waiting user leaves the line (ABANDONED) when
  nothing showed they are still there (a join, a GetStatus, an open WatchStatus
  stream: K_SEEN, written in batches by each process) for the timeout and a
  grace as long again (up to PRESENCE_GRACE_MAX_MS: a phone that suspended a
  background tab has that long to come back). Nobody is dropped before the
  opening, nor before the pre-queue is drawn: the clock starts then.
]]

-- The waiting user's entry seq (a drawn entrant's is in its record).
local function waiting_seq(user)
  local entrant = redis.call('HGET', K_ENTRANTS, user)
  if entrant then return string.match(entrant, '^(%d+)') end
  return redis.call('ZSCORE', K_WAITING, user)
end

-- Drops up to `max` walk-aways; returns their OP_LEFT ops, in the order applied.
local function drop_walk_aways(ev, now, max)
  if ev.presence_ms <= 0 or (ev.opens_at > 0 and now < ev.opens_at) then return {} end
  if ev.draw == DRAW_OPEN or ev.draw == DRAW_DRAWING then return {} end
  local start = ev.opens_at
  if ev.draw == DRAW_DONE then start = math.max(start, stored_time(redis.call('HGET', K_META, 'draw_done_at'))) end
  local cutoff = now - ev.presence_ms - math.min(ev.presence_ms, PRESENCE_GRACE_MAX_MS)
  if cutoff <= start then return {} end
  local ops = {}
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', cutoff, 'LIMIT', 0, max)) do
    redis.call('ZREM', K_SEEN, user)
    local position = place_in_line(user)
    -- (a seated or departed user's entry is only swept away)
    if position then
      redis.call('HSET', K_GONE, user, GONE_ABANDONED .. waiting_seq(user))
      redis.call('ZREM', K_DRAWN, user)
      redis.call('ZREM', K_WAITING, user)
      redis.call('HDEL', K_ENTRANTS, user)
      redis.call('HDEL', K_PARTIES, user)
      feed(FEED_ABANDONED, user)
      ops[#ops + 1] = {OP_LEFT, position, user}
    end
  end
  if #ops > 0 then add_to(K_META, 'abandoned_total', #ops) end
  return ops
end

-- Marks users as seen at `now` (a join); only for events that drop walk-aways.
local function seen(ev, now, user)
  if ev.presence_ms > 0 then redis.call('ZADD', K_SEEN, now, user) end
end
