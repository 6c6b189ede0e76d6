"""The Lua scripts behind RedisCounters: each step is one script, so one round trip and atomic.

Counter names (every one under the configured prefix):
  acct                  hash {spent, held}: the account, nano-dollars
  kw:<key>:<window>     hash {spent, held}: one key's spend window
  rl:<scope>:<minute>   hash {r, t}: requests and tokens in one rate window (expires after it)
  holds                 sorted set: hold id -> expiry (ms), for reclaiming a dead instance's holds
  hold:<id>             hash {amount, tokens, kw, rl}: what a hold reserved, to undo it exactly
  done:<id>             string: the hold was settled (a late settle or reclaim is then a no-op)
Amounts are integers; Lua numbers are doubles, exact below 2**53 (accounts/money.py caps them).
"""

from __future__ import annotations

# KEYS: acct, kw, holds, hold, rate names...
# ARGV: amount, enforce, credits, key_limit (-1: none), tokens, expires_ms, id, reset_ms,
#       kw_ttl_s (0: none), then rpm, tpm per rate name (-1: none)
# Returns {1} granted, {0, kind, limit, remaining, reset_ms} refused, {-1} seed acct, {-2} seed kw.
CLAIM = """
local acct, kw, holds, hold = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local amount = tonumber(ARGV[1])
local enforce = ARGV[2] == '1'
local credits = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
local reset_ms = tonumber(ARGV[8])
-- A missing hash reads as no 'spent': only SEED creates these hashes, always with both fields
-- (every other write to them checks EXISTS first), so one HMGET also answers "seeded?".
local a = redis.call('HMGET', acct, 'spent', 'held')
if not a[1] then return {-1} end
local k
if limit >= 0 then
  k = redis.call('HMGET', kw, 'spent', 'held')
  if not k[1] then return {-2} end
end
local avail = credits - tonumber(a[1]) - tonumber(a[2])
if enforce and avail < amount then
  return {0, 'credits', credits, math.max(avail, 0), 0}
end
if limit >= 0 then
  local rem = limit - tonumber(k[1]) - tonumber(k[2])
  if rem < amount or rem <= 0 then return {0, 'key_limit', limit, math.max(rem, 0), 0} end
end
for i = 5, #KEYS do
  local rpm = tonumber(ARGV[8 + 2 * (i - 4)])
  local tpm = tonumber(ARGV[9 + 2 * (i - 4)])
  local c = redis.call('HMGET', KEYS[i], 'r', 't')
  local r = tonumber(c[1] or '0')
  local t = tonumber(c[2] or '0')
  if rpm >= 0 and r + 1 > rpm then return {0, 'rpm', rpm, math.max(rpm - r, 0), reset_ms} end
  if tpm >= 0 and t + tokens > tpm then
    return {0, 'tpm', tpm, math.max(tpm - t, 0), reset_ms}
  end
end
redis.call('HINCRBY', acct, 'held', amount)
local held_kw = ''
if limit >= 0 then
  redis.call('HINCRBY', kw, 'held', amount)
  held_kw = kw
end
local names = {}
for i = 5, #KEYS do
  -- Its first request creates a window (nothing else writes 'r'), and sets when it goes.
  if redis.call('HINCRBY', KEYS[i], 'r', 1) == 1 then
    redis.call('PEXPIRE', KEYS[i], reset_ms + 60000)
  end
  redis.call('HINCRBY', KEYS[i], 't', tokens)
  names[#names + 1] = KEYS[i]
end
redis.call('HSET', hold, 'amount', amount, 'tokens', tokens, 'kw', held_kw,
           'rl', table.concat(names, ' '))
redis.call('ZADD', holds, tonumber(ARGV[6]), ARGV[7])
return {1}
"""

# KEYS: the counter to seed. ARGV: spent, ttl_s (0: none). Seeds only a missing counter, so
# instances racing to seed cannot overwrite reservations made after the first seed.
SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'held', 0)
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS: acct, holds. ARGV: done_ttl_s, the prefix of hold:<id> and done:<id>, then per hold:
# id, cost, tokens (-1: keep the reservation), kw (the claim's key window, used when the hold
# was already reclaimed). A whole batch of settles is one call: per call, not per hold, is what
# costs the client CPU. Returns how many holds were settled (a repeat counts 0).
# The charge is committed in the ledger before this runs. A reclaimed hold (its instance looked
# dead) already gave its amount back, so only the spend is added.
# Per hold only the done marker and the hold's record are touched one by one; the counters'
# changes are summed per counter and written once per call (a dozen Redis calls a hold were
# most of Redis's time per request), which the script's atomicity makes the same to readers.
SETTLE = """
local acct, holds = KEYS[1], KEYS[2]
local done_ttl = tonumber(ARGV[1])
local prefix = ARGV[2]
local known = {}  -- name -> exists; nothing below creates or deletes a counter
local function exists(name)
  local e = known[name]
  if e == nil then
    e = redis.call('EXISTS', name) == 1
    known[name] = e
  end
  return e
end
local deltas, order = {}, {}  -- deltas[name][field]: the change, counters in first-seen order
local function add(name, field, by)
  local fields = deltas[name]
  if fields == nil then
    fields = {}
    deltas[name] = fields
    order[#order + 1] = name
  end
  local d = fields[field] or 0
  -- Lua's numbers are doubles: a sum past 2^52 is written out before it could stop being
  -- exact (each amount alone is capped below 2^53, accounts/money.py).
  if math.abs(d + by) > 4503599627370496 then
    if d ~= 0 then redis.call('HINCRBY', name, field, d) end
    d = 0
  end
  fields[field] = d + by
end
local acct_exists = exists(acct)
local gone, ids = {}, {}
local settled = 0
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  -- Marks the hold settled and tells whether it already was, in one call (the script is
  -- atomic, so marking it before the work below is the same as after).
  if redis.call('SET', prefix .. 'done:' .. id, '1', 'EX', done_ttl, 'NX') then
    local hold = prefix .. 'hold:' .. id
    local cost = tonumber(ARGV[i + 1])
    local kw = ARGV[i + 3]
    local h = redis.call('HMGET', hold, 'amount', 'tokens', 'kw', 'rl')
    if h[1] then kw = h[3] end
    local kw_exists = kw ~= '' and exists(kw)
    if h[1] then
      local amount = tonumber(h[1])
      if acct_exists then add(acct, 'held', -amount) end
      if kw_exists then add(kw, 'held', -amount) end
      local used = tonumber(ARGV[i + 2])
      local unused = tonumber(h[2]) - used
      if used >= 0 and unused > 0 and h[4] ~= '' then
        for name in string.gmatch(h[4], '%S+') do
          if exists(name) then add(name, 't', -unused) end
        end
      end
      gone[#gone + 1] = hold
      ids[#ids + 1] = id
    end
    if acct_exists then add(acct, 'spent', cost) end
    if kw_exists then add(kw, 'spent', cost) end
    settled = settled + 1
  end
end
for _, name in ipairs(order) do
  local fields = deltas[name]
  for _, field in ipairs({'held', 'spent', 't'}) do
    local d = fields[field]
    -- Skipped at 0: Lua writes a negated zero as "-0", which HINCRBY refuses.
    if d ~= nil and d ~= 0 then redis.call('HINCRBY', name, field, d) end
  end
end
if #gone > 0 then
  redis.call('DEL', unpack(gone))
  redis.call('ZREM', holds, unpack(ids))
end
return settled
"""

# KEYS: acct, holds, hold. ARGV: id. Nothing was charged: give the whole amount back.
RELEASE = """
local h = redis.call('HMGET', KEYS[3], 'amount', 'kw')
if not h[1] then return 0 end
local amount = tonumber(h[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'held', 0 - amount) end
if h[2] ~= '' and redis.call('EXISTS', h[2]) == 1 then
  redis.call('HINCRBY', h[2], 'held', 0 - amount)
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: holds, hold. ARGV: id, new expiry (ms). Before a charge is committed: keep the hold from
# being reclaimed meanwhile, or report that it already was (then nothing may be charged, or
# the balance it was released to could be spent twice).
CONFIRM = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[1])
return 1
"""
