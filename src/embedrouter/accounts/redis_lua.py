"""The Lua scripts behind RedisCounters: each step is one script, so one round trip and atomic.

Counter names (every one under the configured prefix):
  acct                  hash {spent, held}: the account, nano-dollars
  kw:<key>:<window>     hash {spent, held}: one key's spend window
  rl:<scope>:<minute>   hash {r, t}: requests and tokens in one rate window (expires after it)
  holds                 sorted set: hold id -> expiry (ms), for reclaiming a dead instance's holds
  hold:<id>             hash {amount, tokens, kw, rl}: what a hold reserved, to undo it exactly
  done:<id>             string: the hold was settled (a late settle or reclaim is then a no-op);
                        expires after redis_counters.DONE_TTL_S
Amounts are integers; Lua numbers are doubles, exact below 2**53 (accounts/money.py caps them).
"""

from __future__ import annotations

# KEYS: acct, holds. ARGV: the prefix of hold:<id>, then per claim: the number of rate windows
# n, amount, enforce, credits, key_limit (-1: none), tokens, expires_ms, id, reset_ms, kw (its
# key window's counter, '' without a limit), then n times: the window's name, rpm, tpm (-1:
# none). The claims gathered in one turn of a server's event loop are one call, checked and
# applied in their order exactly as one call each would be: each counter is read once and
# written once a call (per claim that was 9+ Redis calls, most of a claim's time in Redis).
# Returns per claim {1} granted, {0, kind, limit, remaining, reset_ms} refused, {-1} seed acct,
# {-2} seed kw.
CLAIM = """
local acct, holds = KEYS[1], KEYS[2]
local prefix = ARGV[1]
-- Spend counters (the account, key windows), each read once: name -> {spent, held, held to
-- add}, or false if not seeded. A missing hash reads as no 'spent': only SEED creates these
-- hashes, always with both fields (every other write to them checks EXISTS first), so one
-- HMGET also answers "seeded?".
local spends, spend_order = {}, {}
local function spend(name)
  local s = spends[name]
  if s == nil then
    local v = redis.call('HMGET', name, 'spent', 'held')
    s = v[1] and {tonumber(v[1]), tonumber(v[2]), 0} or false
    spends[name] = s
    if s then spend_order[#spend_order + 1] = name end
  end
  return s
end
-- Lua's numbers are doubles: a running sum past 2^52 is written out before it could stop
-- being exact (each amount alone is capped below 2^53, accounts/money.py).
local function hold_more(s, name, amount)
  if math.abs(s[3] + amount) > 4503599627370496 then
    if s[3] ~= 0 then redis.call('HINCRBY', name, 'held', s[3]) end
    s[2], s[3] = s[2] + s[3], 0
  end
  s[3] = s[3] + amount
end
local rls, rl_order = {}, {}  -- name -> {r, t, r to add, t to add, pexpire_ms or false}
local function rl_state(name)
  local w = rls[name]
  if w == nil then
    local c = redis.call('HMGET', name, 'r', 't')
    w = {tonumber(c[1] or '0'), tonumber(c[2] or '0'), 0, 0, false}
    -- Its first request creates a window (nothing else writes 'r'), and sets when it goes.
    w.created = not c[1]
    rls[name] = w
    rl_order[#rl_order + 1] = name
  end
  return w
end
local a = spend(acct)
local zadd = {}
local out = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local amount = tonumber(ARGV[i + 1])
  local enforce = ARGV[i + 2] == '1'
  local credits = tonumber(ARGV[i + 3])
  local limit = tonumber(ARGV[i + 4])
  local tokens = tonumber(ARGV[i + 5])
  local expires = ARGV[i + 6]
  local id = ARGV[i + 7]
  local reset_ms = tonumber(ARGV[i + 8])
  local kw = ARGV[i + 9]
  local w0 = i + 10
  i = w0 + 3 * n
  local result
  local k
  if limit >= 0 then k = spend(kw) end
  if not a then
    result = {-1}
  elseif limit >= 0 and not k then
    result = {-2}
  else
    local avail = credits - a[1] - a[2] - a[3]
    if enforce and avail < amount then
      result = {0, 'credits', credits, math.max(avail, 0), 0}
    end
    if not result and limit >= 0 then
      local rem = limit - k[1] - k[2] - k[3]
      if rem < amount or rem <= 0 then
        result = {0, 'key_limit', limit, math.max(rem, 0), 0}
      end
    end
    if not result then
      for j = w0, i - 1, 3 do
        local w = rl_state(ARGV[j])
        local rpm, tpm = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
        local r, t = w[1] + w[3], w[2] + w[4]
        if rpm >= 0 and r + 1 > rpm then
          result = {0, 'rpm', rpm, math.max(rpm - r, 0), reset_ms}
          break
        end
        if tpm >= 0 and t + tokens > tpm then
          result = {0, 'tpm', tpm, math.max(tpm - t, 0), reset_ms}
          break
        end
      end
    end
    if not result then
      hold_more(a, acct, amount)
      local held_kw = ''
      if limit >= 0 then
        hold_more(k, kw, amount)
        held_kw = kw
      end
      local names = {}
      for j = w0, i - 1, 3 do
        local w = rl_state(ARGV[j])
        w[3] = w[3] + 1
        w[4] = w[4] + tokens
        if w.created and not w[5] then w[5] = reset_ms + 60000 end
        names[#names + 1] = ARGV[j]
      end
      redis.call('HSET', prefix .. 'hold:' .. id, 'amount', amount, 'tokens', tokens,
                 'kw', held_kw, 'rl', table.concat(names, ' '))
      zadd[#zadd + 1] = expires
      zadd[#zadd + 1] = id
      result = {1}
    end
  end
  out[#out + 1] = result
end
for _, name in ipairs(spend_order) do
  local s = spends[name]
  if s[3] ~= 0 then redis.call('HINCRBY', name, 'held', s[3]) end
end
for _, name in ipairs(rl_order) do
  local w = rls[name]
  if w[3] > 0 then
    redis.call('HINCRBY', name, 'r', w[3])
    if w[4] ~= 0 then redis.call('HINCRBY', name, 't', w[4]) end
    if w[5] then redis.call('PEXPIRE', name, w[5]) end
  end
end
if #zadd > 0 then redis.call('ZADD', holds, unpack(zadd)) end
return out
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
