/*
 * Ref-matched requests: the registry of requests waiting for their answer; the
 * requests that do not wait for a connection (history, edit, remove, react); and read
 * positions (Reads), which do wait. A build fragment (see util.js).
 *
 * A request handler is {ack(frame), nack(meta), fail(err, retry), drop()}: exactly one
 * of them is called, once. fail() gets an error frame that carried the request's ref
 * ({code, reason}, and its `retry` or null) and returns true if it took care of it
 * (then no 'error' event is emitted). drop() means the connection was lost first.
 */

function Requests() {
  this._lastRef = 0;
  this._byRef = new Map();
}

/** Register `handler` under a fresh ref (refs are never reused by one client). */
Requests.prototype.open = function (handler) {
  var ref = ++this._lastRef;
  this._byRef.set(ref, handler);
  return ref;
};

Requests.prototype._take = function (ref) {
  var handler = this._byRef.get(ref);
  if (handler) this._byRef.delete(ref);
  return handler || null;
};

/** An `ack` or `nack` frame; one whose ref no request waits for is ignored. */
Requests.prototype.answer = function (frame) {
  var handler = this._take(frame.ref);
  if (!handler) return;
  if (frame.t === 'ack') handler.ack(frame);
  else handler.nack(frame.meta);
};

/** An error frame with `ref`: true if the request handled it silently. */
Requests.prototype.fail = function (ref, err, retry) {
  var handler = this._take(ref);
  return handler !== null && handler.fail(err, retry) === true;
};

/** The connection is gone: every request is told so, in the order they were made. */
Requests.prototype.dropAll = function () {
  var all = this._byRef;
  this._byRef = new Map();
  all.forEach(function (handler) { handler.drop(); });
};

/**
 * A handler that settles `deferred` with pick(ack frame), the nack's meta, the error
 * frame as {error: 'protocol', code, reason}, or {error: 'disconnected'}.
 */
function answerInto(deferred, pick) {
  return {
    ack: function (frame) { deferred.resolve(pick(frame)); },
    nack: function (meta) { deferred.reject(meta); },
    fail: function (err) { deferred.reject(protocolError(err.code, err.reason)); },
    drop: function () { deferred.reject({error: REJECT.DISCONNECTED}); }
  };
}

function checkId(id) {
  return typeof id === 'string' && id ? null : protocolError(CODES.INVALID, 'id must be a message id');
}

/** Why `data` cannot be a message's data ({error: 'invalid', reason}), or null. */
function checkData(data) {
  if (!isPlainObject(data)) return {error: REJECT.INVALID, reason: 'data must be a plain object'};
  try {
    JSON.stringify(data);
  } catch (err) {
    return {error: REJECT.INVALID, reason: errorMessage(err)};
  }
  return null;
}

// A request that needs the connection now: rejected {error: 'not_connected'} unless
// connected, then with `bad` (a failed local check) if given.
Client.prototype._ask = function (bad, t, fields, pick) {
  if (!this._online()) return rejected({error: REJECT.NOT_CONNECTED});
  if (bad) return rejected(bad);
  var deferred = new Deferred();
  this._request(t, fields, answerInto(deferred, pick));
  return deferred.promise;
};

/**
 * Older messages of `room`: {before: seq (default: the newest), limit: 1..100
 * (default 50)}. Resolves with the messages, oldest first; they are not emitted.
 */
Client.prototype.history = function (room, options) {
  var name = this._rooms.nameOf(room);
  var opts = options || {};
  var fields = {room: name};
  var bad = checkRoom(name);
  if (opts.before !== undefined) {
    fields.before = opts.before;
    if (!isWireInt(opts.before)) bad = bad || protocolError(CODES.INVALID, 'before must be a seq');
  }
  if (opts.limit !== undefined) {
    fields.limit = opts.limit;
    if (!isWireInt(opts.limit, 1) || opts.limit > LIMITS.HISTORY) {
      bad = bad || protocolError(CODES.INVALID, 'limit must be 1..' + LIMITS.HISTORY);
    }
  }
  return this._ask(bad, 'history', fields, function (frame) {
    return Array.isArray(frame.list) ? frame.list : [];
  });
};

/** Replace the data of message `id` in `room`; resolves with the edited message. */
Client.prototype.edit = function (room, id, data) {
  var name = this._rooms.nameOf(room);
  var bad = checkRoom(name) || checkId(id) || checkData(data);
  return this._ask(bad, 'edit', {room: name, id: id, data: data}, function (frame) {
    return frame.msg;
  });
};

/** Delete message `id` from `room`; resolves with {room, id}. */
Client.prototype.remove = function (room, id) {
  var name = this._rooms.nameOf(room);
  return this._ask(checkRoom(name) || checkId(id), 'remove', {room: name, id: id},
                   function (frame) { return {room: frame.room, id: frame.id}; });
};

/** Toggle this user's `emoji` on message `id`; resolves with {room, id, reactions}. */
Client.prototype.react = function (room, id, emoji) {
  var name = this._rooms.nameOf(room);
  var bad = checkRoom(name) || checkId(id) ||
    (isEmoji(emoji) ? null : protocolError(CODES.INVALID, 'emoji must be 1..' + LIMITS.EMOJI +
                                           ' characters without white space'));
  return this._ask(bad, 'react', {room: name, id: id, emoji: emoji}, function (frame) {
    return {room: frame.room, id: frame.id, reactions: frame.reactions};
  });
};

/**
 * Move this user's read position in `room` to `seq`; resolves with {room, seq}, the
 * position the server now holds. While not connected the highest seq asked per room
 * is remembered and sent after the reconnect (every promise of it then settles with
 * that one answer); one in flight when the connection drops is sent again.
 */
Client.prototype.markRead = function (room, seq) {
  if (this._state === 'disconnected') return rejected({error: REJECT.NOT_CONNECTED});
  var name = this._rooms.nameOf(room);
  var bad = checkRoom(name) ||
    (isWireInt(seq) ? null : protocolError(CODES.INVALID, 'seq must be an integer >= 0')) ||
    (this._rooms.has(name) ? null : protocolError(CODES.NOT_JOINED, 'not in this room'));
  return bad ? rejected(bad) : this._reads.mark(name, seq);
};

// Read positions waiting for a connection: room -> {seq, deferreds}.
function Reads(client) {
  this._client = client;
  this._waiting = new Map();
}

Reads.prototype.mark = function (room, seq) {
  var deferred = new Deferred();
  if (this._client._online()) this._send(room, seq, [deferred]);
  else this._wait(room, seq, [deferred]);
  return deferred.promise;
};

Reads.prototype._wait = function (room, seq, deferreds) {
  var waiting = this._waiting.get(room);
  if (waiting) {
    waiting.seq = Math.max(waiting.seq, seq);
    waiting.deferreds = waiting.deferreds.concat(deferreds);
  } else {
    this._waiting.set(room, {seq: seq, deferreds: deferreds});
  }
};

Reads.prototype._send = function (room, seq, deferreds) {
  var self = this;
  function each(fn) { deferreds.forEach(fn); }
  this._client._request('read', {room: room, seq: seq}, {
    ack: function (frame) {
      each(function (d) { d.resolve({room: frame.room, seq: frame.seq}); });
    },
    nack: function (meta) { each(function (d) { d.reject(meta); }); },
    fail: function (err) {
      each(function (d) { d.reject(protocolError(err.code, err.reason)); });
    },
    drop: function () { self._wait(room, seq, deferreds); }
  });
};

/** After a welcome (and the re-joins): send what waited. */
Reads.prototype.resume = function () {
  var self = this;
  var all = this._waiting;
  this._waiting = new Map();
  all.forEach(function (waiting, room) { self._send(room, waiting.seq, waiting.deferreds); });
};

/** The client left `room` (or was removed): what waited for it is rejected with `err`. */
Reads.prototype.forget = function (room, err) {
  var waiting = this._waiting.get(room);
  if (!waiting) return;
  this._waiting.delete(room);
  waiting.deferreds.forEach(function (d) { d.reject(Object.assign({}, err)); });
};

Reads.prototype.rejectAll = function (err) {
  var self = this;
  Array.from(this._waiting.keys()).forEach(function (room) { self.forget(room, err); });
};
