/*
 * The Client: one connection's state machine (attempts, backoff, the watchdog,
 * heartbeat answers, close codes) and the dispatch of incoming frames. What the
 * client keeps across connections lives in three parts it owns: Rooms (rooms.js),
 * Outbox (outbox.js) and Reads (requests.js); Requests matches answers to refs.
 * A build fragment (see util.js).
 *
 * States and the events their transitions emit (only _setState changes the state):
 *
 *   disconnected --connect()--> connecting      (no event)
 *   connecting   --welcome----> connected       emits connect
 *   connecting   --failed-----> reconnecting    emits reconnect
 *   connected    --lost-------> reconnecting    emits disconnect, then reconnect
 *   reconnecting --welcome----> connected       emits connect
 *   any --disconnect(), unauthorized, fatal error--> disconnected
 *                                               emits disconnect if it was connected
 *
 * A failed first attempt emits no 'disconnect': that event always pairs with an
 * earlier 'connect'. While reconnecting, a failed attempt only schedules the next one,
 * so 'disconnect' and 'reconnect' fire once per outage. Events are emitted after the
 * client's own bookkeeping, so a handler may call any method (even disconnect()).
 *
 * Each attempt is a "link": {transport, startedAt, lastHeard, hbTimeout, watchdog,
 * overdue, welcomed}. this._link is the current one; callbacks of any other link are
 * ignored. `welcomed` is the link's own phase (its welcome arrived), which is what may
 * be written on it; the client's state follows it within the same call.
 *
 * What the parts may use: _online(), _request(t, fields, handler), _notify(t, fields),
 * _emit(event, arg), state() and _user.
 */

var DEFAULTS = {
  auth: null,           // any JSON, or a function returning it or a Promise of it
  transport: 'sockjs',  // 'sockjs' | 'websocket' | factory(url, callbacks)
  sockjs: {},           // sockjs-client's own options, e.g. {transports: ['xhr-streaming']}
  minDelay: 500,        // backoff: the first retry waits up to this long (ms)
  maxDelay: 30000,      // backoff: no retry waits longer than this (ms)
  timeout: 10000,       // from starting an attempt until `welcome` (ms)
  heartbeatTimeout: 0,  // silence that counts as a lost connection; 0: 2 x welcome.hb
  outbox: 100           // sends that may wait for an answer (queued + sent)
};
var FALLBACK_HB = 25000;  // used when a welcome frame carries no usable `hb`
var CONFIRM_MS = 500;     // a passed deadline is checked once more this much later

// Reasons given to 'disconnect' and 'reconnect' handlers, besides the lowercased
// name of a server error code (e.g. 'restarting' for a 4014 error frame).
var REASONS = {
  CLIENT: 'client',                       // disconnect() was called
  CLOSED: 'transport_closed',             // the transport closed (or failed to open)
  CONNECT_TIMEOUT: 'connect_timeout',     // no welcome within `timeout` ms
  HEARTBEAT_TIMEOUT: 'heartbeat_timeout', // nothing heard for `heartbeatTimeout` ms
  AUTH_FAILED: 'auth_failed',             // the `auth` function threw or rejected
  UNAUTHORIZED: 'unauthorized'            // the server refused the auth data
};

function normalizeOptions(options) {
  var opts = {};
  Object.keys(DEFAULTS).forEach(function (key) {
    opts[key] = options && options[key] !== undefined ? options[key] : DEFAULTS[key];
  });
  var t = opts.transport;
  if (t !== 'sockjs' && t !== 'websocket' && typeof t !== 'function') {
    throw new TypeError("chitchat: transport must be 'sockjs', 'websocket' or a function");
  }
  ['minDelay', 'maxDelay', 'heartbeatTimeout', 'timeout'].forEach(function (key) {
    if (typeof opts[key] !== 'number' || !(opts[key] >= 0)) {
      throw new TypeError('chitchat: ' + key + ' must be a number >= 0');
    }
  });
  if (!opts.timeout) throw new TypeError('chitchat: timeout must be > 0');
  if (!isWireInt(opts.outbox, 1)) throw new TypeError('chitchat: outbox must be an integer >= 1');
  return opts;
}

/**
 * A chat connection to the chitchat server mounted at `url` (e.g. '/chat').
 * Does not connect until connect() is called. See DEFAULTS for the options.
 */
function Client(url, options) {
  if (typeof url !== 'string' || !url) throw new TypeError('chitchat: url must be a string');
  this._url = url;
  this._options = normalizeOptions(options);
  this._openTransport = transportFactory(this._options);
  this._events = new Emitter();
  this._state = 'disconnected';
  this._link = null;     // the current attempt or connection
  this._retry = null;    // the timer of the next attempt, while reconnecting
  this._failures = 0;    // failed attempts since the last welcome: the backoff exponent
  this._quietUntil = 0;  // until then failed attempts are expected (a restart): no error
  this._user = null;     // this connection's user id, from the last welcome
  this._requests = new Requests();
  this._rooms = new Rooms(this);
  this._outbox = new Outbox(this, this._options.outbox);
  this._reads = new Reads(this);
}

/**
 * Start connecting (state 'connecting'); keeps reconnecting until disconnect(), an
 * `unauthorized` frame or a fatal error frame. No-op unless disconnected. Returns this.
 */
Client.prototype.connect = function () {
  if (this._state !== 'disconnected') return this;
  this._failures = 0;
  this._setState('connecting');
  this._attempt();
  return this;
};

/**
 * Close the connection for good: no timers are left, the rooms are forgotten and
 * every promise still waiting is rejected with {error: 'disconnected'}. Emits
 * 'disconnect' with reason 'client' if it was connected. Returns this.
 */
Client.prototype.disconnect = function () {
  if (this._state === 'disconnected') return this;
  this._drop(true);
  this._setState('disconnected', REASONS.CLIENT);
  return this;
};

/** Call fn(arg) on `event` (see EVENTS in util.js). */
Client.prototype.on = function (event, fn) {
  this._events.on(event, fn);
  return this;
};

/** Stop calling fn on `event` (every handler of `event` if fn is omitted). */
Client.prototype.off = function (event, fn) {
  this._events.off(event, fn);
  return this;
};

/** 'disconnected', 'connecting' (first attempt), 'connected' or 'reconnecting'. */
Client.prototype.state = function () { return this._state; };
Client.prototype.isConnected = function () { return this._state === 'connected'; };
Client.prototype.isConnecting = function () { return this._state === 'connecting'; };
Client.prototype.isDisconnected = function () { return this._state === 'disconnected'; };
Client.prototype.isReconnecting = function () { return this._state === 'reconnecting'; };

// The one place the state changes. `arg` is {user, meta} for 'connected', else the
// reason. A handler may change the state again; the rest of this transition is then
// stale and not emitted.
Client.prototype._setState = function (next, arg) {
  var prev = this._state;
  if (prev === next) return;
  this._state = next;
  if (prev === 'connected') this._events.emit('disconnect', arg);
  if (this._state !== next) return;
  if (next === 'connected') this._events.emit('connect', arg);
  else if (next === 'reconnecting') this._events.emit('reconnect', arg);
};

// ------------------------------------------------------ what the parts may use

/** True when frames may be written: the current link has been welcomed. */
Client.prototype._online = function () {
  return this._link !== null && this._link.welcomed;
};

/**
 * Write request `t` with a fresh ref and `fields` (an object, or its JSON text) and
 * register `handler` {ack(frame), nack(meta), fail(err, retry), drop()} for its
 * answer. When not _online() (a write failed during a resume) it is dropped at once;
 * a transport that throws is a lost connection, so handler.drop() may run before this
 * returns.
 */
Client.prototype._request = function (t, fields, handler) {
  if (!this._online()) {
    handler.drop();
    return;
  }
  var ref = this._requests.open(handler);
  var body = typeof fields === 'string' ? fields : JSON.stringify(fields);
  this._write(this._link, '{"t":"' + t + '","ref":' + ref +
                          (body === '{}' ? '}' : ',' + body.slice(1)));
};

/** Write a frame that has no answer (typing). Only while _online(). */
Client.prototype._notify = function (t, fields) {
  this._write(this._link, JSON.stringify(Object.assign({t: t}, fields)));
};

Client.prototype._emit = function (event, arg) {
  this._events.emit(event, arg);
};

// ------------------------------------------------------------------ attempts

// Start one attempt: get the auth data, open a transport, wait for welcome.
Client.prototype._attempt = function () {
  var self = this;
  var link = {
    transport: null, startedAt: now(), lastHeard: now(), hbTimeout: 0,
    watchdog: null, overdue: false, welcomed: false
  };
  this._link = link;
  this._watch(link);

  // Callbacks of a replaced link are dropped; early ones (a factory calling back
  // before it returned) are deferred until link.transport is set.
  function guard(fn) {
    return function (arg) {
      if (self._link !== link) return;
      if (!link.transport) {
        Promise.resolve().then(function () { if (self._link === link) fn(arg); });
        return;
      }
      fn(arg);
    };
  }
  var auth = this._options.auth;
  Promise.resolve()
    .then(function () { return typeof auth === 'function' ? auth() : auth; })
    .then(function (data) {
      return JSON.stringify({t: 'auth', v: protocol.VERSION, data: data === undefined ? null : data});
    })
    .then(function (frame) {
      if (self._link !== link) return;
      var transport = self._openTransport(self._url, {
        onopen: guard(function () {
          link.lastHeard = now();
          // The default room's position (or default: false) as it is now.
          var resume = JSON.stringify(self._rooms.authFields());
          self._write(link, resume === '{}' ? frame : frame.slice(0, -1) + ',' + resume.slice(1));
        }),
        onmessage: guard(function (text) {
          link.lastHeard = now();
          self._receive(link, text);
        }),
        onclose: guard(function (info) {
          var err = typeof info === 'object' && info !== null
            ? {code: Number(info.code) || 0, reason: String(info.reason || 'transport closed')}
            : {code: 0, reason: String(info || 'transport closed')};
          self._lost(REASONS.CLOSED, self._state === 'connected' ? null : err);
        })
      });
      if (!transport || typeof transport.send !== 'function' ||
          typeof transport.close !== 'function') {
        throw new TypeError('the transport factory must return {send(text), close()}');
      }
      link.transport = transport;
    }, function (err) {
      if (self._link !== link) return;
      self._lost(REASONS.AUTH_FAILED, {code: 0, reason: 'auth: ' + errorMessage(err)});
    })
    .catch(function (err) {
      if (self._link === link) self._lost(REASONS.CLOSED, {code: 0, reason: errorMessage(err)});
    });
};

// The watchdog: one timer per link, re-armed from timestamps on each expiry, so a
// throttled (background tab) timer that fires late still judges by elapsed time.
// Before welcome the deadline is startedAt + timeout; after, lastHeard + hbTimeout.
Client.prototype._watch = function (link) {
  var self = this;
  var deadline = link.welcomed
    ? link.lastHeard + link.hbTimeout
    : link.startedAt + this._options.timeout;
  var left = deadline - now();
  function checkAgainIn(ms) {
    link.watchdog = setTimeout(function () { if (self._link === link) self._watch(link); }, ms);
  }
  clearTimeout(link.watchdog);
  link.watchdog = null;
  if (left > 0) {
    link.overdue = false;
    checkAgainIn(left);
  } else if (!link.overdue) {
    // Past the deadline: look once more a little later. The page itself may have
    // been stalled (frozen tab, busy CPU, sleep) with frames still queued behind
    // this timer, and those count.
    link.overdue = true;
    checkAgainIn(CONFIRM_MS);
  } else if (link.welcomed) {
    this._lost(REASONS.HEARTBEAT_TIMEOUT);
  } else {
    this._lost(REASONS.CONNECT_TIMEOUT,
               {code: 0, reason: 'no welcome within ' + this._options.timeout + ' ms'});
  }
};

// Send a frame's text on `link`. A transport that throws is treated as lost.
Client.prototype._write = function (link, text) {
  if (this._link !== link || !link.transport) return;
  try {
    link.transport.send(text);
  } catch (err) {
    this._lost(REASONS.CLOSED, {code: 0, reason: 'send failed: ' + errorMessage(err)});
  }
};

// Close the current link (if any) and cancel every timer. Requests in flight revert
// to waiting (sends, joins, reads) or are rejected ({error: 'disconnected'}); when
// `final` (stopped for good) everything still waiting is rejected too.
Client.prototype._drop = function (final) {
  var link = this._link;
  this._link = null;
  clearTimeout(this._retry);
  this._retry = null;
  if (link) {
    clearTimeout(link.watchdog);
    try {
      if (link.transport) link.transport.close();
    } catch (err) {
      report(err);
    }
  }
  this._requests.dropAll();
  this._outbox.hold();
  if (final) {
    var gone = {error: REJECT.DISCONNECTED};
    this._outbox.rejectAll(gone);
    this._reads.rejectAll(gone);
    this._rooms.forgetAll(gone);
  }
};

// The current attempt failed or the connection was lost: retry after `delay` ms
// (default: the backoff). `error` ({code, reason}) is emitted as 'error' when given;
// it is given for every failure before welcome and for a server error frame, not
// for the loss of a connection that was up, nor for the failed attempts while a
// server that announced its restart (4014) is expected back (`_quietUntil`).
Client.prototype._lost = function (reason, error, delay) {
  var self = this;
  this._drop(false);
  if (delay === undefined) {
    delay = backoff(this._failures++, this._options.minDelay, this._options.maxDelay);
  }
  this._retry = setTimeout(function () {
    self._retry = null;
    self._attempt();
  }, delay);
  this._setState('reconnecting', reason);
  if (error && now() >= this._quietUntil) this._events.emit('error', error);
  if (this._state === 'reconnecting') this._rooms.clearTyping();
};

// The server ended it (unauthorized, fatal error): disconnected, no retry. The
// event comes after the state change, so a handler may call connect() again.
Client.prototype._stop = function (reason, event, arg) {
  this._drop(true);
  this._setState('disconnected', reason);
  this._events.emit(event, arg);
};

// ------------------------------------------------------------ incoming frames

Client.prototype._receive = function (link, text) {
  var frame;
  try {
    frame = JSON.parse(text);
  } catch (err) {
    return;  // not JSON: ignored (it still counted as a sign of life)
  }
  if (!frame || typeof frame !== 'object' || typeof frame.t !== 'string') return;
  switch (frame.t) {
    case 'ping': this._write(link, '{"t":"pong"}'); return;
    case 'welcome': this._onWelcome(link, frame); return;
    case 'unauthorized': this._stop(REASONS.UNAUTHORIZED, 'unauthorized', frame.meta); return;
    case 'error': this._onError(frame); return;
    default: break;
  }
  if (!link.welcomed) return;
  if (frame.t === 'ack' || frame.t === 'nack') this._requests.answer(frame);
  else this._rooms.receive(frame);  // room frames; 'pong' and later types are ignored there
};

// Before the 'connect' event the link is resumed: re-joins (with `since`), remembered
// read positions, then the outbox, so that frames a 'connect' handler writes go after
// them (a send to a room goes after that room's join).
Client.prototype._onWelcome = function (link, frame) {
  if (link.welcomed) return;
  var hb = typeof frame.hb === 'number' && frame.hb > 0 ? frame.hb : FALLBACK_HB;
  link.hbTimeout = this._options.heartbeatTimeout || 2 * hb;
  link.welcomed = true;
  this._watch(link);  // now on the heartbeat deadline
  this._failures = 0;
  this._quietUntil = 0;
  this._user = typeof frame.user === 'string' ? frame.user : null;
  this._rooms.welcomed(frame.room);
  this._outbox.limit(frame.limits ? frame.limits.send : null);
  this._rooms.resume();
  this._reads.resume();
  this._outbox.flush();
  if (this._link !== link) return;  // a write failed: already reconnecting
  this._setState('connected', {user: frame.user, meta: frame.meta});
  if (this._link === link) this._rooms.announceDefault();
};

// Error frames. Non-fatal ones answer a request (when they carry its ref) and are
// emitted, unless the request took care of it (a queued send refused as FLOODED goes
// back to the outbox). Fatal ones end the connection; what follows depends on the code.
Client.prototype._onError = function (frame) {
  var code = Number(frame.code) || 0;
  var err = {code: code, reason: String(frame.reason || '')};
  var hasRef = typeof frame.ref === 'number';
  if (hasRef) err.ref = frame.ref;
  var retry = isWireInt(frame.retry) ? frame.retry : null;
  if (frame.fatal !== true && protocol.FATAL_CODES.indexOf(code) < 0) {
    if (!(hasRef && this._requests.fail(frame.ref, err, retry))) this._events.emit('error', err);
    return;
  }
  var maxDelay = this._options.maxDelay;
  switch (code) {
    case CODES.RESTARTING:
      // Not an error: the server asks its clients to spread their return over `retry`,
      // and attempts that fail while it restarts (within `retry` + maxDelay) are no
      // errors either; a server that stays away longer is reported as usual.
      this._quietUntil = now() + (retry === null ? 0 : retry) + maxDelay;
      this._lost(codeReason(code), null, retry === null ? undefined : Math.random() * retry);
      break;
    case CODES.FLOOD_CLOSED:
      this._lost(codeReason(code), err, maxDelay / 2 + Math.random() * maxDelay / 2);
      break;
    case CODES.HEARTBEAT_TIMEOUT:
    case CODES.TOO_MANY_CONNECTIONS:
      this._lost(codeReason(code), err);
      break;
    default:
      this._stop(codeReason(code), 'error', err);
  }
};
