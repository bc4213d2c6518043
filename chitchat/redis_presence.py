"""Presence on Redis: a user connected to one process is a member on all of them.

Layout (``P`` the prefix; room keys carry the room in a hash tag like the store's):

- ``P:{room}:pm`` hash ``<node>:<user>`` -> 1: which node has which user in the room;
- ``P:{room}:pc`` hash user -> the number of nodes that have them: the members;
- ``P:{room}:pv`` the room's presence version;
- ``P:pnodes`` sorted set node -> the time (Redis's clock, ms) its entries expire;
- ``P:pn:<node>`` set: the rooms where that node has entries.

Every change is one Lua script that changes the entries, increments the version and
PUBLISHes the change on the room's channel, so every node receives a room's changes in
version order. A keepalive task refreshes this node's expiry every ``ttl / 4`` seconds;
every node also sweeps: a node whose expiry passed (killed, hung, cut off) has its
entries removed and its users announced ``left`` (for those no other node has).

Bound: a node killed just after its refresh expires ``ttl`` seconds later, and the
next sweep of another node (every ``ttl / 4``) finds it, so its users leave within
``1.25 * ttl`` seconds plus the ``presence_interval`` the receiving nodes coalesce
over: 25.25 s with the defaults (``ttl=20``). A node that was swept although alive (a
pause longer than ``ttl``) notices at its next refresh and writes its entries again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

from . import _redis, _resp, channels
from ._redis import room_key, translated
from ._tasks import spawn
from .errors import BackendError, ConfigurationError
from .presence import PresenceBackend, Publish

if TYPE_CHECKING:
    from ._resp import Connection

__all__ = ["RedisPresence"]

log = logging.getLogger("chitchat.redis")

_PRELUDE = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- KEYS[1] pm, KEYS[2] pc, KEYS[3] pv
local function announce(room, channel, joined, left)
  if #joined == 0 and #left == 0 then return end
  local change = {op = 'presence', room = room, v = redis.call('INCR', KEYS[3])}
  if #joined > 0 then change.joined = joined end
  if #left > 0 then change.left = left end
  redis.call('PUBLISH', channel, 'c|' .. cjson.encode(change))
end

local function enter(node, user, joined)
  if redis.call('HSETNX', KEYS[1], node .. ':' .. user, 1) == 1 then
    if redis.call('HINCRBY', KEYS[2], user, 1) == 1 then joined[#joined + 1] = user end
  end
end

local function leave(node, user, left)
  if redis.call('HDEL', KEYS[1], node .. ':' .. user) == 1 then
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      left[#left + 1] = user
    end
  end
end

local function mine(node)
  local users, p = {}, node .. ':'
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, #p) == p then users[#users + 1] = string.sub(field, #p + 1) end
  end
  return users
end
"""

# KEYS pm pc pv pnodes pn:<node>; ARGV node, user, room, channel, ttl (ms).
# Returns 1 if this node had been swept (its other entries must be written again).
_ADD = _PRELUDE + r"""
local swept = redis.call('ZADD', KEYS[4], now_ms() + tonumber(ARGV[5]), ARGV[1])
redis.call('SADD', KEYS[5], ARGV[3])
local joined = {}
enter(ARGV[1], ARGV[2], joined)
announce(ARGV[3], ARGV[4], joined, {})
return swept
"""

# KEYS pm pc pv pn:<node>; ARGV node, user, room, channel, '1' if the node's last user
# in the room.
_REMOVE = _PRELUDE + r"""
local left = {}
leave(ARGV[1], ARGV[2], left)
announce(ARGV[3], ARGV[4], {}, left)
if ARGV[5] == '1' then redis.call('SREM', KEYS[4], ARGV[3]) end
return #left
"""

# This node's users in the room become exactly ARGV[5..] (one change announced).
# KEYS pm pc pv pn:<node> pnodes; ARGV node, room, channel, ttl (ms), users...
_SYNC = _PRELUDE + r"""
local want = {}
for i = 5, #ARGV do want[ARGV[i]] = true end
local joined, left = {}, {}
for _, user in ipairs(mine(ARGV[1])) do
  if not want[user] then leave(ARGV[1], user, left) end
end
for i = 5, #ARGV do enter(ARGV[1], ARGV[i], joined) end
announce(ARGV[2], ARGV[3], joined, left)
if #ARGV >= 5 then
  redis.call('SADD', KEYS[4], ARGV[2])
  redis.call('ZADD', KEYS[5], now_ms() + tonumber(ARGV[4]), ARGV[1])
else
  redis.call('SREM', KEYS[4], ARGV[2])
end
return #joined + #left
"""

# KEYS pnodes; ARGV node, ttl (ms). 1 if the node was not there (new, or swept).
_ALIVE = _PRELUDE + r"""
return redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
"""

# KEYS pnodes. The nodes whose entries expired.
_DEAD = _PRELUDE + r"""
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now_ms(), 'LIMIT', 0, 100)
"""

# KEYS pm pc pv; ARGV dead node, room, channel: its users leave the room.
_SWEEP_ROOM = _PRELUDE + r"""
local left = {}
for _, user in ipairs(mine(ARGV[1])) do leave(ARGV[1], user, left) end
announce(ARGV[2], ARGV[3], {}, left)
return #left
"""

# KEYS pnodes pn:<dead node>; ARGV the node. Forgets it if it is still expired.
_FORGET = _PRELUDE + r"""
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry and tonumber(expiry) < now_ms() then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

# KEYS pc pv. {version, members...}
_MEMBERS = r"""
local out = {tonumber(redis.call('GET', KEYS[2]) or '0')}
for _, user in ipairs(redis.call('HKEYS', KEYS[1])) do out[#out + 1] = user end
return out
"""

_SCRIPTS = {name: _resp.Script(source) for name, source in (
    ("add", _ADD), ("remove", _REMOVE), ("sync", _SYNC), ("alive", _ALIVE), ("dead", _DEAD),
    ("sweep_room", _SWEEP_ROOM), ("forget", _FORGET), ("members", _MEMBERS))}


class RedisPresence(PresenceBackend):
    """The presence backend contract on Redis at ``url`` (keys ``<prefix>:...``; the
    prefix must be the ``RedisBroker``'s, whose channels carry the changes).

    ``ttl``: seconds after which a node that stopped refreshing its entries loses its
    users (see the module docstring for the bound: ``1.25 * ttl``).
    """

    def __init__(self, url: str, *, prefix: str = "chitchat", ttl: float = 20.0) -> None:
        if not ttl > 0:
            raise ConfigurationError("RedisPresence ttl must be positive")
        _redis.check_url(url)
        self.url = url
        self.prefix = prefix
        self.ttl = ttl
        self.every = ttl / 4
        self._client: Connection | None = None
        self._node = ""
        self._local: dict[str, set[str]] = {}  # room -> this node's users in it
        self._dirty = False  # a write failed: write this node's entries again
        self._down = False
        self._task: asyncio.Task[None] | None = None

    # -- plumbing -----------------------------------------------------------------------

    def _redis(self) -> Connection:
        if self._client is None:
            self._client = _resp.Connection(self.url, _redis.COMMAND_TIMEOUT)
        return self._client

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._redis().script(_SCRIPTS[name], keys, args)

    def _room_keys(self, room: str) -> list[str]:
        return [room_key(self.prefix, room, part) for part in ("pm", "pc", "pv")]

    def _channel(self, room: str) -> str:
        return f"{self.prefix}:{channels.room_channel(room)}"

    @property
    def _nodes(self) -> str:
        return f"{self.prefix}:pnodes"

    def _rooms_of(self, node: str) -> str:
        return f"{self.prefix}:pn:{node}"

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    # -- the contract -------------------------------------------------------------------

    async def start(self, publish: Publish, node: str) -> None:
        if ":" in node:
            raise ConfigurationError(f"a node id has no ':' ({node!r})")
        self._node = node
        async with translated("presence: starting"):
            await self._run("alive", [self._nodes], [node, self._ttl_ms])
            await self._sweep()
        self._task = spawn(self._keepalive(), "presence: the Redis keepalive")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is None:
            return
        self._local.clear()
        try:  # leave at once rather than after ttl
            await self._sync_all()
            await self._client.call("ZREM", self._nodes, self._node)
        except _redis.failures() as exc:
            log.warning("presence: could not remove this node's entries (%s): other "
                        "nodes sweep them within %g s", exc, 1.25 * self.ttl)
        client, self._client = self._client, None
        await client.close()

    async def add(self, room: str, user: str) -> None:
        self._local.setdefault(room, set()).add(user)
        try:
            swept = await self._run(
                "add", [*self._room_keys(room), self._nodes, self._rooms_of(self._node)],
                [self._node, user, room, self._channel(room), self._ttl_ms])
        except _redis.failures() as exc:
            self._failed(exc)
            raise BackendError(f"Redis: presence add failed: {exc}") from exc
        if swept:
            self._dirty = True
            log.warning("presence: this node's entries had expired (a pause longer than "
                        "%g s?): writing them again", self.ttl)
            spawn(self._refresh(), "presence: writing this node's entries again")

    async def remove(self, room: str, user: str) -> None:
        """Never raises: when Redis is down the removal is applied by the keepalive
        once it is back (with ``left`` announced then)."""
        users = self._local.get(room)
        if users is not None:
            users.discard(user)
            if not users:
                del self._local[room]
        try:
            await self._run(
                "remove", [*self._room_keys(room), self._rooms_of(self._node)],
                [self._node, user, room, self._channel(room),
                      "1" if room not in self._local else "0"])
        except _redis.failures() as exc:
            self._failed(exc)

    async def members(self, room: str) -> tuple[list[str], int]:
        async with translated("presence: members"):
            result = await self._run("members", self._room_keys(room)[1:], [])
        return sorted(result[1:]), int(result[0])

    # -- keeping this node's entries alive, and sweeping dead nodes' --------------------

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.every * random.uniform(0.8, 1.0))
            await self._refresh()

    async def _refresh(self) -> None:
        try:
            swept = await self._run("alive", [self._nodes], [self._node, self._ttl_ms])
            if swept or self._dirty:
                await self._sync_all()
            await self._sweep()
        except _redis.failures() as exc:
            self._failed(exc)
            return
        if self._down:
            self._down = False
            log.warning("presence: Redis is back; this node's members are written again")

    async def _sync_all(self) -> None:
        self._dirty = False
        assert self._client is not None
        rooms = set(self._local) | await _redis.members(self._client,
                                                        self._rooms_of(self._node))
        for room in rooms:
            await self._run(
                "sync", [*self._room_keys(room), self._rooms_of(self._node), self._nodes],
                [self._node, room, self._channel(room), self._ttl_ms,
                      *sorted(self._local.get(room, ()))])

    async def _sweep(self) -> None:
        assert self._client is not None
        dead: list[str] = await self._run("dead", [self._nodes], [])
        for node in dead:
            if node == self._node:
                continue
            rooms = await _redis.members(self._client, self._rooms_of(node))
            left = 0
            for room in rooms:
                left += await self._run("sweep_room", self._room_keys(room),
                                        [node, room, self._channel(room)])
            await self._run("forget", [self._nodes, self._rooms_of(node)], [node])
            log.info("presence: node %s stopped refreshing its entries: %d user(s) left "
                     "%d room(s)", node, left, len(rooms))

    def _failed(self, exc: BaseException) -> None:
        self._dirty = True
        if not self._down:
            self._down = True
            log.error("presence: Redis failed (%s): this node's members are written again "
                      "when it is back", exc)
