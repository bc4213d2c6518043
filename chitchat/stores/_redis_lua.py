"""The Lua scripts of ``RedisStore`` (see docs/design.md, "Redis", for the layout).

Every script that touches a room gets the room's keys in this order::

    KEYS[1] meta   hash   epoch, first, last (the room's Position)
    KEYS[2] log    hash   seq -> record (every entry first .. last)
    KEYS[3] ids    hash   message id -> "<seq>|<author part>" (messages not removed)
    KEYS[4] msgs   zset   seq (score = member = seq) of the messages not removed
    KEYS[5] own    zset   "<author part><seq, 16 digits>" (score 0): messages by author
    KEYS[6] reads  zset   user -> read position
    KEYS[7] rooms  set    every room's name (for ``trim``)

and ``ARGV[1]`` a fresh epoch (used only if the room does not exist yet), ``ARGV[2]``
the room's name, ``ARGV[3]`` the time (seconds since the Unix epoch, Python's repr of
the float, so that Lua compares exactly the doubles Python has), ``ARGV[4]`` the
retention count (0: none). A record is ``<kind><time>:<length of id>:<id><payload>``:
kind ``m`` (payload: the message's JSON as it is now), ``d`` (a removed message), ``e``,
``r``, ``x`` (an edit, a change of reactions, a removal of the message ``id``).
An author part is ``string.format('%06d', #user) .. user`` (prefix-free, see
``chitchat._redis.user_part``).
"""

from __future__ import annotations

from .._resp import Script

PRELUDE = r"""
local function pad(n) return string.format('%016d', n) end

local function record(kind, ts, id, payload)
  return kind .. ts .. ':' .. #id .. ':' .. id .. payload
end

local function parse(rec)  -- kind, time, id, payload
  local c1 = string.find(rec, ':', 2, true)
  local c2 = string.find(rec, ':', c1 + 1, true)
  local n = tonumber(string.sub(rec, c1 + 1, c2 - 1))
  return string.sub(rec, 1, 1), string.sub(rec, 2, c1 - 1),
         string.sub(rec, c2 + 1, c2 + n), string.sub(rec, c2 + n + 1)
end

local function ensure()
  if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
    redis.call('HSET', KEYS[1], 'first', 1, 'last', 0)
    redis.call('SADD', KEYS[7], ARGV[2])
  end
end

local function ref_seq(ref) return string.sub(ref, 1, string.find(ref, '|', 1, true) - 1) end

local function unindex(id)
  local ref = redis.call('HGET', KEYS[3], id)
  if not ref then return nil end
  local bar = string.find(ref, '|', 1, true)
  local seq = tonumber(string.sub(ref, 1, bar - 1))
  local author = string.sub(ref, bar + 1)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[4], seq)
  if author ~= '' then redis.call('ZREM', KEYS[5], author .. pad(seq)) end
  return seq
end

local function drop(seq)
  local rec = redis.call('HGET', KEYS[2], seq)
  if rec then
    local kind, _, id = parse(rec)
    if kind == 'm' then unindex(id) end
    redis.call('HDEL', KEYS[2], seq)
  end
end

-- Retention by count, as part of every write: at most 200 entries per call (trim
-- does the rest if the count was lowered a lot).
local function cap(capacity, last)
  if capacity <= 0 then return end
  local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
  local stop = last - capacity + 1
  local n = 0
  while first < stop and n < 200 do
    drop(first)
    first = first + 1
    n = n + 1
  end
  if n > 0 then redis.call('HSET', KEYS[1], 'first', first) end
end

-- The message a send key names, as it is now (nil: none, or gone).
local function keyed(value, prefix)
  local c = string.find(value, ':', 1, true)
  local n = tonumber(string.sub(value, 1, c - 1))
  local id, room = string.sub(value, c + 1, c + n), string.sub(value, c + n + 1)
  local base = prefix .. ':{' .. room .. '}:'
  local ref = redis.call('HGET', base .. 'ids', id)
  if not ref then return nil end
  local rec = redis.call('HGET', base .. 'log', ref_seq(ref))
  if not rec then return nil end
  local _, _, _, payload = parse(rec)
  return payload
end
"""

# KEYS[8] the send key, KEYS[9] the send keys' index (zset: "<author part><key>" ->
# time). ARGV[5] id, [6] head, [7] tail, [8] author part ('' for none), [9] the send
# key ('' for none), [10] its time to live (s), [11] the key prefix, [12] the room's
# channel to publish the entry on ('' for none).
# Returns {seq} for a new message, {0, json} for a duplicate.
APPEND = PRELUDE + r"""
ensure()
local author, cid = ARGV[8], ARGV[9]
if cid ~= '' then
  local value = redis.call('GET', KEYS[8])
  if value then
    local original = keyed(value, ARGV[11])
    if original then return {0, original} end
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'last', 1)
local raw = ARGV[6] .. seq .. ARGV[7]
redis.call('HSET', KEYS[2], seq, record('m', ARGV[3], ARGV[5], raw))
redis.call('HSET', KEYS[3], ARGV[5], seq .. '|' .. author)
redis.call('ZADD', KEYS[4], seq, seq)
if author ~= '' then redis.call('ZADD', KEYS[5], 0, author .. pad(seq)) end
if cid ~= '' then
  redis.call('SET', KEYS[8], #ARGV[5] .. ':' .. ARGV[5] .. ARGV[2], 'EX', ARGV[10])
  redis.call('ZADD', KEYS[9], ARGV[3], author .. cid)
end
cap(tonumber(ARGV[4]), seq)
if ARGV[12] ~= '' then redis.call('PUBLISH', ARGV[12], 'm' .. seq .. '|' .. raw) end
return {seq}
"""

# An edit or a change of reactions, if the message is still as the caller read it.
# ARGV[5] id, [6] kind ('e' or 'r'), [7] the JSON the caller read, [8] the new JSON,
# [9] the room's channel ('' for none), [10] and [11] the entry's frame before and
# after its seq.
# Returns nil (no such message), {0, json now} (it changed meanwhile: compute again)
# or {seq of the change entry}.
CHANGE = PRELUDE + r"""
local ref = redis.call('HGET', KEYS[3], ARGV[5])
if not ref then return nil end
local seq = ref_seq(ref)
local _, ts, id, payload = parse(redis.call('HGET', KEYS[2], seq))
if payload ~= ARGV[7] then return {0, payload} end
redis.call('HSET', KEYS[2], seq, record('m', ts, id, ARGV[8]))
local at = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('HSET', KEYS[2], at, record(ARGV[6], ARGV[3], id, ''))
cap(tonumber(ARGV[4]), at)
if ARGV[9] ~= '' then
  redis.call('PUBLISH', ARGV[9], 'e' .. at .. '|' .. ARGV[10] .. at .. ARGV[11])
end
return {at}
"""

# ARGV[5] id, [6] the room's channel ('' for none), [7] and [8] the entry's frame
# before and after its seq. Returns nil or {seq of the remove entry, the message's
# JSON before}.
REMOVE = PRELUDE + r"""
if not redis.call('HGET', KEYS[3], ARGV[5]) then return nil end
local seq = unindex(ARGV[5])
local _, ts, id, payload = parse(redis.call('HGET', KEYS[2], seq))
redis.call('HSET', KEYS[2], seq, record('d', ts, id, ''))
local at = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('HSET', KEYS[2], at, record('x', ARGV[3], id, ''))
cap(tonumber(ARGV[4]), at)
if ARGV[6] ~= '' then
  redis.call('PUBLISH', ARGV[6], 'e' .. at .. '|' .. ARGV[7] .. at .. ARGV[8])
end
return {at, payload}
"""

# ARGV[5] id. The message's JSON now, or nil.
GET = PRELUDE + r"""
local ref = redis.call('HGET', KEYS[3], ARGV[5])
if not ref then return nil end
local rec = redis.call('HGET', KEYS[2], ref_seq(ref))
if not rec then return nil end
local _, _, _, payload = parse(rec)
return payload
"""

# KEYS[1] a send key; ARGV[1] the key prefix. The message it names, as it is now.
FIND = PRELUDE + r"""
local value = redis.call('GET', KEYS[1])
if not value then return nil end
return keyed(value, ARGV[1])
"""

POSITION = PRELUDE + r"""
ensure()
return redis.call('HMGET', KEYS[1], 'epoch', 'first', 'last')
"""

# ARGV[5] after, [6] limit. Returns {epoch, first, last, then per entry: seq, kind,
# text}: kind m (text: the message), x (text: the removed message's id), e or r (text:
# the target message as it is now; entries whose target is gone are left out).
READ_AFTER = PRELUDE + r"""
ensure()
local m = redis.call('HMGET', KEYS[1], 'epoch', 'first', 'last')
local first, last = tonumber(m[2]), tonumber(m[3])
local out = {m[1], first, last}
local s = math.max(tonumber(ARGV[5]) + 1, first)
local limit, found = tonumber(ARGV[6]), 0
while s <= last and found < limit do
  local rec = redis.call('HGET', KEYS[2], s)
  if rec then
    local kind, _, id, payload = parse(rec)
    local text = nil
    if kind == 'm' then
      text = payload
    elseif kind == 'x' then
      text = id
    elseif kind == 'e' or kind == 'r' then
      local ref = redis.call('HGET', KEYS[3], id)
      if ref then
        local _, _, _, now = parse(redis.call('HGET', KEYS[2], ref_seq(ref)))
        text = now
      end
    end
    if text then
      out[#out + 1] = s
      out[#out + 1] = kind
      out[#out + 1] = text
      found = found + 1
    end
  end
  s = s + 1
end
return out
"""

# ARGV[5] before ('' for none), [6] limit. {epoch, first, last, messages oldest first}.
RECENT = PRELUDE + r"""
ensure()
local m = redis.call('HMGET', KEYS[1], 'epoch', 'first', 'last')
local out = {m[1], tonumber(m[2]), tonumber(m[3])}
local high = '+inf'
if ARGV[5] ~= '' then high = '(' .. ARGV[5] end
local seqs = redis.call('ZREVRANGEBYSCORE', KEYS[4], high, '-inf', 'LIMIT', 0, ARGV[6])
for i = #seqs, 1, -1 do
  local _, _, _, payload = parse(redis.call('HGET', KEYS[2], seqs[i]))
  out[#out + 1] = payload
end
return out
"""

# KEYS[8] the user's set of rooms with a read position. ARGV[5] user, [6] seq.
MARK_READ = PRELUDE + r"""
ensure()
redis.call('ZADD', KEYS[6], 'GT', ARGV[6], ARGV[5])
redis.call('SADD', KEYS[8], ARGV[2])
return tonumber(redis.call('ZSCORE', KEYS[6], ARGV[5]))
"""

# ARGV[5] user, [6] its author part, [7] how many readers. {last read, unread, top
# readers as user, position, user, position...}. Unread: messages after the read
# position minus the user's own, both counted on sorted sets.
READ_STATE = PRELUDE + r"""
ensure()
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
local score = redis.call('ZSCORE', KEYS[6], ARGV[5])
local last_read = score and tonumber(score) or 0
local after = math.max(last_read, first - 1)
local total = redis.call('ZCOUNT', KEYS[4], '(' .. after, '+inf')
local own = redis.call('ZLEXCOUNT', KEYS[5], '(' .. ARGV[6] .. pad(after),
                       '[' .. ARGV[6] .. '9999999999999999')
local top = {}
local readers = tonumber(ARGV[7])
if readers > 0 then top = redis.call('ZREVRANGE', KEYS[6], 0, readers - 1, 'WITHSCORES') end
return {last_read, total - own, top}
"""

# Retention of one room. ARGV[1] count (0: none), [2] cutoff time ('' for none), [3]
# at most this many entries dropped per call. Returns 1 when there is more to drop.
TRIM_ROOM = PRELUDE + r"""
local m = redis.call('HMGET', KEYS[1], 'first', 'last')
if not m[1] then return 0 end
local first, last = tonumber(m[1]), tonumber(m[2])
local stop, budget, n = first, tonumber(ARGV[3]), 0
if tonumber(ARGV[1]) > 0 then stop = math.max(stop, last + 1 - tonumber(ARGV[1])) end
while first < stop and n < budget do
  drop(first)
  first = first + 1
  n = n + 1
end
if first >= stop and ARGV[2] ~= '' then
  local cutoff = tonumber(ARGV[2])
  while first <= last and n < budget do
    local rec = redis.call('HGET', KEYS[2], first)
    if rec then
      local _, ts = parse(rec)
      if tonumber(ts) >= cutoff then break end
      drop(first)
    end
    first = first + 1
    n = n + 1
  end
end
redis.call('HSET', KEYS[1], 'first', first)
if n >= budget then return 1 end
return 0
"""

# KEYS[1] the send keys' index; ARGV[1] the key prefix, [2] cutoff time, [3] batch.
# Drops the keys made before the cutoff; returns how many.
TRIM_KEYS = r"""
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(old) do redis.call('DEL', ARGV[1] .. ':sk:' .. member) end
if #old > 0 then redis.call('ZREM', KEYS[1], unpack(old)) end
return #old
"""

SCRIPTS = {name: Script(globals()[name]) for name in (
    "APPEND", "CHANGE", "REMOVE", "GET", "FIND", "POSITION", "READ_AFTER", "RECENT",
    "MARK_READ", "READ_STATE", "TRIM_ROOM", "TRIM_KEYS")}
