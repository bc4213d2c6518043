/*
 * The outbox: every send() not answered yet, in call order, queued or sent. A send
 * whose answer has not come when the connection drops is sent again after the
 * reconnect with the same cid (the server answers a cid it knows with the original
 * message, so it is kept once). The flush is paced by a copy of the server's send
 * limit (welcome.limits.send). A build fragment (see util.js).
 */

var FLOOD_RETRY = 1000;  // pause after a FLOODED answer that carries no `retry` (ms)

function Outbox(client, size) {
  this._client = client;
  this._size = size;       // the most entries (queued + sent) at once
  this._entries = [];      // {cid, room, data, body, state, fromQueue, deferred}
  this._bucket = null;     // TokenBucket of welcome.limits.send; null: no pacing
  this._heldUntil = 0;     // no flush before this time (a FLOODED answer's retry)
  this._timer = null;      // the next flush, while paced or held
}

Outbox.prototype.add = function (room, data) {
  var entry = {
    cid: makeCid(), room: room, data: data, body: null,
    state: 'queued', fromQueue: true, deferred: new Deferred()
  };
  try {
    // Encoded once, so a re-send carries what was sent, whatever the app does to `data`.
    entry.body = JSON.stringify(room === null
      ? {cid: entry.cid, data: data}
      : {room: room, cid: entry.cid, data: data});
  } catch (err) {
    return rejected({error: REJECT.INVALID, reason: errorMessage(err)});
  }
  if (this._entries.length >= this._size) return rejected({error: REJECT.OUTBOX_FULL});
  var behind = this._firstQueued() !== null || this._heldUntil > now();
  this._entries.push(entry);
  if (this._client._online() && !behind) {
    // Sent at once, even past the bucket: a FLOODED answer then tells the app to slow down.
    if (this._bucket) this._bucket.take();
    this._transmit(entry, false);
  } else {
    this.flush();
  }
  return entry.deferred.promise;
};

/** welcome.limits.send: [per second, burst], or null for no pacing. */
Outbox.prototype.limit = function (send) {
  this._bucket = TokenBucket.fromLimit(send);
};

/** Send the queued entries, oldest first, as fast as the bucket and a hold allow. */
Outbox.prototype.flush = function () {
  clearTimeout(this._timer);
  this._timer = null;
  while (this._client._online()) {
    var entry = this._firstQueued();
    if (!entry) return;
    var wait = this._heldUntil - now();
    if (wait <= 0 && this._bucket && !this._bucket.take()) wait = this._bucket.wait();
    if (wait > 0) {
      this._flushIn(wait);
      return;
    }
    this._transmit(entry, true);
  }
};

/** The connection is gone: no flush until the next welcome. */
Outbox.prototype.hold = function () {
  clearTimeout(this._timer);
  this._timer = null;
};

Outbox.prototype.rejectAll = function (err) {
  var all = this._entries;
  this._entries = [];
  this.hold();
  all.forEach(function (entry) { entry.deferred.reject(Object.assign({}, err)); });
};

Outbox.prototype.pending = function () {
  return this._entries.map(function (entry) {
    return {cid: entry.cid, room: entry.room, data: entry.data, state: entry.state};
  });
};

Outbox.prototype._flushIn = function (ms) {
  var self = this;
  clearTimeout(this._timer);
  this._timer = setTimeout(function () {
    self._timer = null;
    self.flush();
  }, ms);
};

Outbox.prototype._firstQueued = function () {
  for (var i = 0; i < this._entries.length; i++) {
    if (this._entries[i].state === 'queued') return this._entries[i];
  }
  return null;
};

Outbox.prototype._settle = function (entry, ok, value) {
  var i = this._entries.indexOf(entry);
  if (i >= 0) this._entries.splice(i, 1);
  if (ok) entry.deferred.resolve(value);
  else entry.deferred.reject(value);
};

// Write `entry`. `fromQueue`: it waited in the outbox (or is a re-send), so a FLOODED
// answer puts it back at its place and holds the flush for the answer's `retry`.
Outbox.prototype._transmit = function (entry, fromQueue) {
  var self = this;
  entry.state = 'sent';
  entry.fromQueue = fromQueue;
  this._client._request('send', entry.body, {
    ack: function (frame) { self._settle(entry, true, frame.msg); },
    nack: function (meta) { self._settle(entry, false, meta); },
    fail: function (err, retry) {
      if (err.code === CODES.FLOODED && entry.fromQueue) {
        entry.state = 'queued';
        self._heldUntil = now() + (retry === null ? FLOOD_RETRY : retry);
        self._flushIn(self._heldUntil - now());
        return true;
      }
      self._settle(entry, false, protocolError(err.code, err.reason));
      return false;
    },
    drop: function () { entry.state = 'queued'; }
  });
};

/**
 * Send a chat message to `options.room` (default: the default room). `data` must be
 * a plain, JSON-encodable object. Resolves with the stored Message when the server
 * acks it; rejects with the nack's meta, {error: 'protocol', code, reason} (an error
 * frame, or a bad room name), {error: 'invalid', reason}, {error: 'outbox_full'}
 * (`outbox` sends already waiting), {error: 'not_connected'} (in state disconnected)
 * or {error: 'disconnected'} (stopped before the answer). While (re)connecting it
 * waits in the outbox; one in flight when the connection drops is sent again.
 */
Client.prototype.send = function (data, options) {
  if (this._state === 'disconnected') return rejected({error: REJECT.NOT_CONNECTED});
  var room = options && options.room !== undefined ? options.room : null;
  if (room !== null && !isRoomName(room)) {
    return rejected(protocolError(CODES.BAD_ROOM, 'bad room name'));
  }
  if (!isPlainObject(data)) {
    return rejected({error: REJECT.INVALID, reason: 'data must be a plain object'});
  }
  return this._outbox.add(room, data);
};

/** The sends not answered yet, in order: [{cid, room, data, state: 'queued'|'sent'}]. */
Client.prototype.pending = function () { return this._outbox.pending(); };
