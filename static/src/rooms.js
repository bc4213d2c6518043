/*
 * Rooms: the rooms this client is in (and is joining), their log positions, members
 * and typing lists; the join/leave requests; re-joins after a reconnect; and the
 * delivery of every room frame. A build fragment (see util.js).
 *
 * Positions. Per room the client keeps the log's epoch and the highest entry seq it
 * has seen; an entry at or below it is a duplicate and is dropped, so no message is
 * shown twice. A join's ack comes after the history, so its room info's seq counts
 * too; the room info of `welcome` and `joined` comes before the history, so there
 * only the entries count (otherwise the history that follows would look seen).
 * That position is the `since` of the next (re-)join, or of `auth` for the default
 * room.
 */

var SEEN_LIMIT = 10000;    // how many delivered push ids are remembered
var TYPING_EVERY = 2000;   // at most one typing frame per room this often (ms)

var INFO_KEYS = ['room', 'meta', 'members', 'epoch', 'seq', 'unread', 'lastRead', 'reads'];

/** The room info fields of a frame (welcome.room, joined, a join's ack). */
function roomInfo(frame) {
  var info = {};
  INFO_KEYS.forEach(function (key) { info[key] = frame[key] === undefined ? null : frame[key]; });
  return info;
}

function idList(value) {
  return Array.isArray(value) ? value.filter(function (id) { return typeof id === 'string'; }) : [];
}

function sameList(a, b) {
  return a.length === b.length && a.every(function (x, i) { return x === b[i]; });
}

function Room(name, data) {
  this.name = name;
  this.data = data;         // the join's data, given again on every re-join
  this.waiter = null;       // the Deferred of a join() not answered yet
  this.info = null;         // the last room info; null until the room is joined
  this.members = null;      // user ids; null when the server keeps no presence
  this.epoch = null;        // the position: the log's epoch...
  this.seq = 0;             // ...and the highest entry seq seen
  this.typing = [];         // who types now, without this client's user
  this.typedAt = -Infinity; // when typing() last wrote a frame
}

/** Take in room info; `historyFollows` for welcome and joined (see the top). */
Room.prototype.apply = function (frame, historyFollows) {
  var epoch = typeof frame.epoch === 'string' ? frame.epoch : null;
  if (epoch !== this.epoch) {
    this.epoch = epoch;
    this.seq = 0;
  }
  if (!historyFollows && isWireInt(frame.seq)) this.seq = Math.max(this.seq, frame.seq);
  this.members = Array.isArray(frame.members) ? idList(frame.members) : null;
  this.info = roomInfo(frame);
};

/** An entry at `seq`: false if it is a duplicate; else it moves the position. */
Room.prototype.accept = function (seq) {
  if (typeof seq !== 'number') return true;
  if (seq <= this.seq) return false;
  this.seq = seq;
  return true;
};

Room.prototype.since = function () {
  return this.epoch === null ? null : {epoch: this.epoch, seq: this.seq};
};

/** What join() resolves with: the room info, with members and position as they are now. */
Room.prototype.snapshot = function () {
  return Object.assign({}, this.info, {
    members: this.members && this.members.slice(), epoch: this.epoch, seq: this.seq
  });
};

function Rooms(client) {
  this._client = client;
  this._byName = new Map();  // name -> Room, in the order they were joined
  this._defaultName = null;  // the default room's name while the client is in it
  this._wantDefault = true;  // false once it left the default room or was removed from it
  this._pushIds = new RecentIds(SEEN_LIMIT);
}

/** `room`, or the default room's name when it is null or undefined. */
Rooms.prototype.nameOf = function (room) {
  return room === null || room === undefined ? this._defaultName : room;
};

/** True if the client is in `name` (its join has completed). */
Rooms.prototype.has = function (name) {
  var record = this._byName.get(name);
  return record !== undefined && record.info !== null;
};

Rooms.prototype.names = function () {
  var names = [];
  this._byName.forEach(function (record, name) { if (record.info !== null) names.push(name); });
  return names;
};

Rooms.prototype.members = function (name) {
  var record = this._byName.get(name);
  return record && record.members ? record.members.slice() : [];
};

/** The default room's part of the `auth` frame: {since}, {default: false} or {}. */
Rooms.prototype.authFields = function () {
  if (!this._wantDefault) return {default: false};
  var record = this._defaultName === null ? null : this._byName.get(this._defaultName);
  var since = record ? record.since() : null;
  return since ? {since: since} : {};
};

/** welcome.room: the default room's info (or null: this connection is in none). */
Rooms.prototype.welcomed = function (info) {
  var name = info && isRoomName(info.room) ? info.room : null;
  if (this._defaultName !== null && this._defaultName !== name) {
    this._byName.delete(this._defaultName);
  }
  this._defaultName = name;
  if (name === null) return;
  var record = this._byName.get(name);
  if (!record) {
    record = new Room(name, undefined);
    this._byName.set(name, record);
  }
  record.apply(info, true);
};

/** After a welcome: join every other room again (with since), in the order joined. */
Rooms.prototype.resume = function () {
  var self = this;
  Array.from(this._byName.values()).forEach(function (record) {
    if (record.name !== self._defaultName) self._join(record);
  });
};

/**
 * After the 'connect' event: the default room's presence, and a join() of it made
 * before the welcome said which room that is resolves (it is never sent).
 */
Rooms.prototype.announceDefault = function () {
  var record = this._defaultName === null ? null : this._byName.get(this._defaultName);
  if (!record) return;
  this._announce(record);
  var waiter = record.waiter;
  record.waiter = null;
  if (waiter) waiter.resolve(record.snapshot());
};

Rooms.prototype._announce = function (record) {
  if (!record.members) return;  // the server keeps no presence
  this._client._emit('presence', {
    room: record.name, members: record.members.slice(), joined: [], left: []
  });
};

Rooms.prototype._current = function (record) {
  return this._byName.get(record.name) === record;
};

Rooms.prototype.join = function (name, data) {
  var record = this._byName.get(name);
  if (record && record.waiter) return record.waiter.promise;
  if (record) return Promise.resolve(record.snapshot());
  record = new Room(name, data);
  record.waiter = new Deferred();
  this._byName.set(name, record);
  if (this._client._online()) this._join(record);
  return record.waiter.promise;
};

// Write the join of `record`. A refused re-join (no join() waits for it) drops the
// room and is announced as 'removed' {room, meta}.
Rooms.prototype._join = function (record) {
  var self = this;
  var fields = {room: record.name};
  if (record.data !== undefined) fields.data = record.data;
  var since = record.since();
  if (since) fields.since = since;
  var waiter = record.waiter;
  function refused(meta) {
    if (self._current(record)) {
      self._forget(record, meta);
      if (!waiter) self._client._emit('removed', {room: record.name, meta: meta});
    }
    if (waiter) waiter.reject(meta);
  }
  this._client._request('join', fields, {
    ack: function (frame) {
      if (!self._current(record)) return;  // left meanwhile: its waiter was rejected then
      record.apply(frame, false);
      if (record.waiter === waiter) record.waiter = null;
      if (waiter) waiter.resolve(record.snapshot());
      self._announce(record);
    },
    nack: refused,
    fail: function (err) { refused(protocolError(err.code, err.reason)); },
    // Still in the rooms (or left, and its waiter rejected then): when it is, it is
    // joined again after the reconnect, for the same waiter.
    drop: function () {}
  });
};

Rooms.prototype.leave = function (name) {
  var record = this._byName.get(name);
  if (!record) return rejected(protocolError(CODES.NOT_JOINED, 'not in this room'));
  this._forget(record, protocolError(CODES.NOT_JOINED, 'left the room'));
  // Not connected: the next connection simply does not join it.
  if (!this._client._online()) return Promise.resolve({room: name});
  var deferred = new Deferred();
  this._client._request('leave', {room: name}, {
    ack: function () { deferred.resolve({room: name}); },
    nack: function (meta) { deferred.reject(meta); },
    fail: function (err) { deferred.reject(protocolError(err.code, err.reason)); },
    drop: function () { deferred.resolve({room: name}); }  // out either way
  });
  return deferred.promise;
};

// Stop delivering the room and forget it; `err` rejects what waited for it.
Rooms.prototype._forget = function (record, err) {
  this._byName.delete(record.name);
  if (record.name === this._defaultName) {
    this._defaultName = null;
    this._wantDefault = false;
  }
  if (record.waiter) record.waiter.reject(err);
  this._client._reads.forget(record.name, err);
};

/** Stopped for good: every room is forgotten; a later connect() starts afresh. */
Rooms.prototype.forgetAll = function (err) {
  var all = Array.from(this._byName.values());
  this._byName = new Map();
  this._defaultName = null;
  this._wantDefault = true;
  all.forEach(function (record) { if (record.waiter) record.waiter.reject(Object.assign({}, err)); });
};

/** The connection was lost: nobody types any more. */
Rooms.prototype.clearTyping = function () {
  var self = this;
  this._byName.forEach(function (record) {
    if (!record.typing.length) return;
    record.typing = [];
    self._client._emit('typing', {room: record.name, users: []});
  });
};

Rooms.prototype.typing = function (name) {
  var record = this._byName.get(name);
  if (!this._client._online() || !record || record.info === null) return;
  var t = now();
  if (t - record.typedAt < TYPING_EVERY) return;
  record.typedAt = t;
  this._client._notify('typing', {room: name});
};

// ------------------------------------------------------------- room frames

/** A frame of the rooms (messages ... read); other types are ignored. */
Rooms.prototype.receive = function (frame) {
  if (Object.prototype.hasOwnProperty.call(ROOM_FRAMES, frame.t)) ROOM_FRAMES[frame.t].call(this, frame);
};

// The room of a log entry if the client is in it and the entry is new, else null.
Rooms.prototype._entry = function (frame) {
  var record = typeof frame.room === 'string' ? this._byName.get(frame.room) : undefined;
  return record && record.accept(frame.seq) ? record : null;
};

var ROOM_FRAMES = {
  messages: function (frame) {
    if (!Array.isArray(frame.list)) return;
    var self = this;
    var fresh = frame.list.filter(function (msg) {
      if (msg === null || typeof msg !== 'object') return false;
      if (msg.room === null || msg.room === undefined) {
        return msg.id === null || msg.id === undefined || self._pushIds.add(msg.id);  // a push
      }
      return self._entry(msg) !== null;
    });
    if (fresh.length) this._client._emit('messages', fresh);
  },

  edit: function (frame) {
    if (this._entry(frame) && frame.msg) this._client._emit('edit', frame.msg);
  },

  remove: function (frame) {
    if (this._entry(frame)) this._client._emit('remove', {room: frame.room, id: frame.id});
  },

  reactions: function (frame) {
    if (!this._entry(frame)) return;
    this._client._emit('reactions', {
      room: frame.room, id: frame.id, reactions: isPlainObject(frame.reactions) ? frame.reactions : {}
    });
  },

  // The position given could not be recovered: what follows is the recent history.
  reset: function (frame) {
    var record = this._byName.get(frame.room);
    if (!record) return;
    record.epoch = typeof frame.epoch === 'string' ? frame.epoch : null;
    record.seq = 0;
    this._client._emit('reset', {room: record.name});
  },

  joined: function (frame) {
    if (!isRoomName(frame.room)) return;
    var record = this._byName.get(frame.room);
    if (!record) {
      record = new Room(frame.room, undefined);
      this._byName.set(frame.room, record);
    }
    record.apply(frame, true);
    this._announce(record);
  },

  removed: function (frame) {
    var record = this._byName.get(frame.room);
    if (!record) return;
    this._forget(record, protocolError(CODES.NOT_JOINED, 'removed from the room'));
    this._client._emit('removed', {room: record.name});
  },

  // A user in both lists came and went (or went and came back): no change either way.
  presence: function (frame) {
    var record = this._byName.get(frame.room);
    if (!record || !record.members) return;
    var members = record.members;
    var came = idList(frame.joined);
    var went = idList(frame.left);
    var joined = came.filter(function (id, i) {
      return members.indexOf(id) < 0 && went.indexOf(id) < 0 && came.indexOf(id) === i;
    });
    var left = went.filter(function (id, i) {
      return members.indexOf(id) >= 0 && came.indexOf(id) < 0 && went.indexOf(id) === i;
    });
    if (!joined.length && !left.length) return;
    record.members = members.filter(function (id) { return left.indexOf(id) < 0; }).concat(joined);
    this._client._emit('presence', {
      room: record.name, members: record.members.slice(), joined: joined, left: left
    });
  },

  typing: function (frame) {
    var record = this._byName.get(frame.room);
    if (!record) return;
    var own = this._client._user;
    var users = idList(frame.users).filter(function (id) { return id !== own; });
    if (sameList(users, record.typing)) return;
    record.typing = users;
    this._client._emit('typing', {room: record.name, users: users.slice()});
  },

  read: function (frame) {
    if (!this._byName.has(frame.room) || !isPlainObject(frame.reads)) return;
    var client = this._client;
    Object.keys(frame.reads).forEach(function (user) {
      client._emit('read', {room: frame.room, user: user, seq: frame.reads[user]});
    });
  }
};

// ------------------------------------------------------------------ the API

/**
 * Join `room` with `data` (given to the server's join handler). Resolves, on the
 * join's ack, with {room, meta, members, epoch, seq, unread, lastRead, reads}; the
 * room's history arrives in 'messages' events before. Rejects with the nack's meta,
 * {error: 'protocol', code, reason}, or {error: 'not_connected'} when disconnected.
 * While (re)connecting it waits and goes out after the welcome. Joining a room the
 * client is in resolves with what is known of it.
 */
Client.prototype.join = function (room, data) {
  if (this._state === 'disconnected') return rejected({error: REJECT.NOT_CONNECTED});
  if (!isRoomName(room)) return rejected(protocolError(CODES.BAD_ROOM, 'bad room name'));
  if (data !== undefined) {
    try {
      JSON.stringify(data);
    } catch (err) {
      return rejected({error: REJECT.INVALID, reason: errorMessage(err)});
    }
  }
  return this._rooms.join(room, data);
};

/**
 * Leave `room` (default: the default room): nothing of it is delivered from now on
 * and it is not joined again after a reconnect. Resolves with {room}, at once when
 * not connected (the next connection does not join it).
 */
Client.prototype.leave = function (room) {
  if (this._state === 'disconnected') return rejected({error: REJECT.NOT_CONNECTED});
  var name = this._rooms.nameOf(room);
  var bad = checkRoom(name);
  return bad ? rejected(bad) : this._rooms.leave(name);
};

/** The names of the rooms this client is in, in the order joined. */
Client.prototype.rooms = function () { return this._rooms.names(); };

/** The user ids in `room` as last known (default: the default room). */
Client.prototype.members = function (room) { return this._rooms.members(this._rooms.nameOf(room)); };

/** Tell `room` this user types: at most one frame per room every 2 s; no-op when offline. */
Client.prototype.typing = function (room) { this._rooms.typing(this._rooms.nameOf(room)); };
