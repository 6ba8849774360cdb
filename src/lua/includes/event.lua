--[[
  Shared by every script (inlined where a script says --- @include "event").

  KEYS[1] meta     hash: name, capacity, hold_seconds, opens_at, closes_at (ms),
                   paused, max_waiting (absent: the service's MAX_WAITING),
                   pow_difficulty (absent: none), next_seq,
                   version, joined/promoted/cancelled/expired_total,
                   layout (LAYOUT of the scripts that created it; absent: 1),
                   prequeue_opens_at, and the draw's draw_* fields (includes/draw.lua),
                   admit_per_minute (absent or 0: unpaced), admit_tat (GCRA's
                   theoretical arrival time of the next admission, ms),
                   presence_timeout_seconds (absent or 0: nobody is dropped), abandoned_total,
                   max_party_size (absent: 1), seats_extra and held_extra (the seats
                   parties take beyond one each, seated and on hold),
                   announce_ko, announce_en, announce_at (the operator's message),
                   fill_more (1: a fill stopped at PROMOTE_MAX; the sweepers go on),
                   sweeper and sweeper_until (ms): the worker's sweeper that sweeps the
                   event, and until when (expire-holds-14.lua)
  KEYS[2] seats    hash: user -> "<seq>" or "<seq>p" (p: promoted from the queue)
  KEYS[3] waiting  sorted set: user -> seq (join order; the position is ZRANK + 1, plus
                   ZCARD drawn while drawn entrants wait ahead)
  KEYS[4] holds    sorted set: user -> ms when the unconfirmed hold runs out
  KEYS[5] gone     hash: user -> "C<seq>" cancelled, "E<seq>" expired or "A<seq>" abandoned
  KEYS[6] rate     hash: 10-second bucket -> users promoted in it (for wait estimates)
  KEYS[7] feed     stream of promotions (k=P), expiries (k=E), seat cancels (k=C) and walk-aways (k=A)
                   with the user (u), for the booking system; capped near FEED_MAX
  KEYS[8] retries  hash: digest of user -> digest of the idempotency_key that made the
                   user's entry (8 bytes each; only for entries made with a key),
                   kept while the user's seat, place or ended record is
  KEYS[9] entrants hash: user -> "<seq>:<entry secret>" for each pre-queue entrant still
                   in line (see includes/draw.lua): its seq is its ticket's entry
  KEYS[10] drawn   sorted set: user -> draw value: the drawn entrants still waiting, the
                   head of the line (ahead of everyone in `waiting`)
  KEYS[11] drawlist string: the published draw, 14 characters a record, '+' and a
                   value (13 hex digits) per entrant drawn, '-' and its value when it
                   left before the draw was done; ListDrawValues reads it
  KEYS[12] seen    sorted set: user -> ms last seen (a join, a GetStatus, an open
                   WatchStatus stream), for events with presence_timeout_seconds
  KEYS[13] parties hash: user -> party size, for parties of more than one (seated or
                   waiting): a party takes that many seats at once
  KEYS[14] changes not a key: the (sharded) pub/sub channel watchers follow, in
                   the event's slot, named in KEYS so the script declares all it
                   touches (SPUBLISH routes by it as by a key)

  A waiting user costs one sorted-set entry and nothing else (an entrant of a
  pre-queue, also its `entrants` record and 14 bytes of the drawlist). Time
  is Redis's own clock (TIME), so every worker agrees when a hold runs out.
]]
local K_META, K_SEATS, K_WAITING, K_HOLDS, K_GONE, K_RATE, K_FEED, K_RETRIES = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_ENTRANTS, K_DRAWN, K_DRAWLIST, K_SEEN, K_PARTIES, K_CHANNEL = KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]

--- @include "codes"

local RATE_BUCKET_MS = 10000
-- Promotions in one script at most: a draw's end or a capacity raise on a big
-- train fills the rest from the sweepers (every 250 ms), each call staying short.
local PROMOTE_MAX = 2500
local RATE_BUCKETS = 30
local FEED_MAX = 100000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A stored number, or 0 when the field is missing or holds no finite number
-- (a value written by hand or by an older version must not break every script).
local function stored_number(v)
  local n = tonumber(v or '0')
  if not n or n ~= n or n == math.huge or n == -math.huge then return 0 end
  return n
end

-- A stored time (epoch ms), or 0 (none) when it is out of what the service
-- accepts (1970 to 9999-12-31T23:59:59.999Z): the scripts and every read agree.
local function stored_time(v)
  local n = stored_number(v)
  if n < 1 or n > 253402300799999 then return 0 end
  return n
end

-- HINCRBY that survives a field holding no integer (written by hand, or out of
-- range): the count starts again from n instead of failing the whole script.
local function add_to(key, field, n)
  local v = redis.pcall('HINCRBY', key, field, n)
  if type(v) == 'table' and v.err then
    redis.call('HSET', key, field, n)
    return n
  end
  return v
end

-- The event's settings; or nil and the refusal to answer: {ERR_NO_EVENT} when
-- it does not exist, {ERR_NEWER_LAYOUT, layout} when newer scripts laid it out
-- (an old worker mid rolling restart must not write into it). With
-- `default_capacity` (the default event) a missing event is created, unless `read_only`.
local function load_event(default_capacity, read_only)
  local v = redis.call('HMGET', K_META, 'capacity', 'hold_seconds', 'opens_at', 'closes_at', 'paused', 'layout', 'max_waiting', 'pow_difficulty',
    'draw_state', 'prequeue_opens_at', 'admit_per_minute', 'presence_timeout_seconds', 'max_party_size', 'fill_more')
  if not v[1] then
    if not default_capacity or default_capacity == '' then return nil, {ERR_NO_EVENT} end
    if not read_only then
      redis.call('HSET', K_META, 'name', 'default', 'capacity', default_capacity, 'hold_seconds', 0, 'layout', LAYOUT)
    end
    v = {default_capacity, '0', false, false, false, false, false, false, false, false, false, false, false, false}
  end
  local layout = stored_number(v[6])
  if layout > LAYOUT then return nil, {ERR_NEWER_LAYOUT, layout} end
  return {
    capacity = stored_number(v[1]),
    hold_ms = stored_number(v[2]) * 1000,
    opens_at = stored_time(v[3]),
    closes_at = stored_time(v[4]),
    paused = v[5] == '1',
    -- nil when the event has none of its own
    max_waiting = v[7] and stored_number(v[7]) or nil,
    pow_difficulty = stored_number(v[8]),
    -- DRAW_OPEN, DRAW_DRAWING, DRAW_DONE, or '' (no pre-queue)
    draw = v[9] or '',
    prequeue_opens_at = stored_time(v[10]),
    admit_per_minute = stored_number(v[11]),
    presence_ms = stored_number(v[12]) * 1000,
    max_party_size = v[13] and math.max(1, stored_number(v[13])) or 1,
    fill_more = v[14] ~= false,
  }
end

-- Records a change: bumps the event's version and tells watchers what moved, as
-- JSON {"v": version, "ops": [...]} on the event's channel (KEYS[14]). Ops:
--   {OP_JOINED, user}       user joined the back of the queue (nobody else moves)
--   {OP_LEFT, pos, user}    user left the queue from pos (everyone behind moves up one)
--   {OP_PROMOTED, n}        the first n of the queue were promoted (everyone moves up n)
--   {OP_SEAT, user}         user's seat changed (taken, confirmed, cancelled, expired)
--   (A change of only JOINED and SEAT ops goes to those users' watchers alone: it must
--   move nobody else. A script that also moves others says so with LEFT or PROMOTED.)
--   {OP_RESET}              reset: every entry is gone
--   {OP_SETTINGS}           the event's settings changed
--   {OP_ANNOUNCED}          the operator's announcement changed
--   {OP_DRAWN, final_seed}  the pre-queue was drawn: its entrants are QUEUED in draw order,
--                           each at the place its value has in the drawlist
--
-- Sent with SPUBLISH (sharded pub/sub, Redis 7.0+): on a cluster the message
-- stays within the shard that owns the event instead of being broadcast to
-- every node. A server without it (before 7.0) gets PUBLISH. The subscribers
-- (src/watch/change-hub.ts) take both kinds, so masters of either version are heard.
local function changed(ops)
  local version = add_to(K_META, 'version', 1)
  local message = cjson.encode({v = version, ops = ops})
  local sent = redis.pcall('SPUBLISH', K_CHANNEL, message)
  if type(sent) == 'table' and sent.err then
    if not string.find(sent.err, 'Unknown Redis command', 1, true) then return error(sent) end
    redis.call('PUBLISH', K_CHANNEL, message)
  end
  return version
end

-- Appends to the feed the booking system reads (WatchEvent, from a cursor).
local function feed(kind, user)
  redis.call('XADD', K_FEED, 'MAXLEN', '~', FEED_MAX, '*', 'k', kind, 'u', user)
end

local function record_promotions(now, n)
  local bucket = math.floor(now / RATE_BUCKET_MS)
  add_to(K_RATE, bucket, n)
  redis.call('HDEL', K_RATE, bucket - RATE_BUCKETS)
  add_to(K_META, 'promoted_total', n)
end

-- Seats taken and seats under an unconfirmed hold, counting party sizes: one
-- per entry, and what parties take beyond one (so a seat removed by hand still
-- frees its seat, and an event from before parties needs nothing new).
local function seats_taken()
  return redis.call('HLEN', K_SEATS) + stored_number(redis.call('HGET', K_META, 'seats_extra'))
end
local function seats_held()
  return redis.call('ZCARD', K_HOLDS) + stored_number(redis.call('HGET', K_META, 'held_extra'))
end

-- The seats a user's party takes (K_PARTIES holds the sizes above 1).
local function party_of(user)
  return tonumber(redis.call('HGET', K_PARTIES, user) or '1') or 1
end

-- A seat leaves (cancelled, expired): its party's seats are free again.
local function free_seat(user, held)
  local size = party_of(user)
  redis.call('HDEL', K_SEATS, user)
  redis.call('HDEL', K_PARTIES, user)
  if size > 1 then add_to(K_META, 'seats_extra', 1 - size) end
  if held then
    redis.call('ZREM', K_HOLDS, user)
    if size > 1 then add_to(K_META, 'held_extra', 1 - size) end
  end
end

-- The head of the line (drawn entrants by draw value, then the waiting by seq):
-- user, seq, and whether it is a drawn entrant; nil when nobody waits.
local function head_of_line()
  local drawn = redis.call('ZRANGE', K_DRAWN, 0, 0)[1]
  if drawn then return drawn, string.match(redis.call('HGET', K_ENTRANTS, drawn) or '0', '^(%d+)'), true end
  local waiting = redis.call('ZRANGE', K_WAITING, 0, 0, 'WITHSCORES')
  if waiting[1] then return waiting[1], waiting[2], false end
  return nil
end

-- Seats the head of the line, party by party, while its party fits in `free`
-- seats (strict order: a party that does not fit waits, and nobody passes it),
-- at most `max` parties.
local function promote(free, max, now, hold_ms)
  local promoted = {}
  local extra = 0
  while #promoted < max do
    local user, seq, drawn = head_of_line()
    if not user then break end
    local size = party_of(user)
    if size > free then break end
    if drawn then
      redis.call('ZREM', K_DRAWN, user)
      redis.call('HDEL', K_ENTRANTS, user)
    else
      redis.call('ZREM', K_WAITING, user)
    end
    redis.call('HSET', K_SEATS, user, seq .. 'p')
    if hold_ms > 0 then redis.call('ZADD', K_HOLDS, now + hold_ms, user) end
    free = free - size
    extra = extra + size - 1
    promoted[#promoted + 1] = user
    feed(FEED_PROMOTED, user)
  end
  if #promoted > 0 then
    record_promotions(now, #promoted)
    if extra > 0 then
      add_to(K_META, 'seats_extra', extra)
      if hold_ms > 0 then add_to(K_META, 'held_extra', extra) end
    end
  end
  return promoted
end

-- Paced entry: how many the pace admits at `now` (math.huge when unpaced).
-- GCRA: see ADMIT_SPAN_MS in script-codes.ts.
local function admissible(ev, now)
  if ev.admit_per_minute <= 0 then return math.huge end
  local interval = ADMIT_SPAN_MS / ev.admit_per_minute
  local tat = math.max(stored_number(redis.call('HGET', K_META, 'admit_tat')), now)
  local slack = now + math.max(0, ADMIT_BURST_MS - interval) - tat
  if slack < 0 then return 0 end
  return math.floor(slack / interval) + 1
end

-- Records k admissions against the pace.
local function admitted(ev, now, k)
  if ev.admit_per_minute <= 0 or k <= 0 then return end
  local tat = math.max(stored_number(redis.call('HGET', K_META, 'admit_tat')), now)
  redis.call('HSET', K_META, 'admit_tat', string.format('%.3f', tat + k * ADMIT_SPAN_MS / ev.admit_per_minute))
end

-- Gives free seats to the head of the line, as many parties as the pace allows; none
-- while the event is paused or its pre-queue is not yet drawn (the draw decides
-- who is at the head).
local function fill(ev, now)
  if ev.paused or ev.draw == DRAW_OPEN or ev.draw == DRAW_DRAWING then return {} end
  local free = ev.capacity - seats_taken()
  if free <= 0 then return {} end
  local promoted = promote(free, math.min(PROMOTE_MAX, admissible(ev, now)), now, ev.hold_ms)
  admitted(ev, now, #promoted)
  -- Stopped by the cap with seats still free: the sweepers go on (expire-holds).
  if #promoted >= PROMOTE_MAX then redis.call('HSET', K_META, 'fill_more', 1) end
  return promoted
end

-- How many wait: the drawn entrants and the waiting.
local function line_length()
  return redis.call('ZCARD', K_DRAWN) + redis.call('ZCARD', K_WAITING)
end

-- A waiting user's 1-based place in line, or nil.
local function place_in_line(user)
  local rank = redis.call('ZRANK', K_DRAWN, user)
  if rank then return rank + 1 end
  rank = redis.call('ZRANK', K_WAITING, user)
  if rank then return redis.call('ZCARD', K_DRAWN) + rank + 1 end
  return nil
end

-- A user's state: {status, position, promoted, hold_expires_ms, seq, entry_secret,
-- party_size}, status an ST_ code. An entrant of a pre-queue is PREQUEUED (no position)
-- until the draw is done, then QUEUED.
local function user_state(user, ev)
  local seat = redis.call('HGET', K_SEATS, user)
  if seat then
    local seq, p = string.match(seat, '^(%d+)(p?)$')
    local hold = redis.call('ZSCORE', K_HOLDS, user)
    return {ST_RESERVED, 0, p == 'p' and 1 or 0, tonumber(hold or '0'), tonumber(seq), '', party_of(user)}
  end
  local place = place_in_line(user)
  if place then
    local entrant = ev.draw ~= '' and redis.call('HGET', K_ENTRANTS, user)
    if entrant then
      local seq, secret = string.match(entrant, '^(%d+):(%x+)$')
      if ev.draw ~= DRAW_DONE then return {ST_PREQUEUED, 0, 0, 0, tonumber(seq), secret, party_of(user)} end
      return {ST_QUEUED, place, 0, 0, tonumber(seq), secret, party_of(user)}
    end
    return {ST_QUEUED, place, 0, 0, tonumber(redis.call('ZSCORE', K_WAITING, user)), '', party_of(user)}
  end
  local gone = redis.call('HGET', K_GONE, user)
  if gone then
    local why = string.sub(gone, 1, 1)
    local status = why == GONE_CANCELLED and ST_CANCELLED or why == GONE_ABANDONED and ST_ABANDONED or ST_EXPIRED
    return {status, 0, 0, 0, tonumber(string.sub(gone, 2)), '', 1}
  end
  return {ST_NOT_FOUND, 0, 0, 0, 0, '', 1}
end
