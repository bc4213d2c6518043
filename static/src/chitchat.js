/*
 * chitchat browser client: speaks docs/PROTOCOL.md over SockJS, native WebSocket or a
 * transport of your own, and reconnects by itself.
 *
 * This is a build fragment, not a module: static/build.js wraps it in a strict-mode
 * function scope where `protocol` holds the constants of static/src/protocol.js. The
 * bundle is also loaded by sockjs-tornado's hidden iframe page, so nothing here may
 * touch the DOM or the network at load time: loading only defines `window.chitchat`.
 *
 * Sections: helpers, events, transports, the Client state machine, the module API.
 */
/* global protocol */

var VERSION = '0.1.0';
var CODES = protocol.CODES;
var REJECT = protocol.CLIENT_REJECTIONS;
var EVENTS = ['connect', 'disconnect', 'reconnect', 'unauthorized', 'messages', 'error'];

var DEFAULTS = {
  auth: null,           // any JSON, or a function returning it or a Promise of it
  transport: 'sockjs',  // 'sockjs' | 'websocket' | factory(url, callbacks)
  sockjs: {},           // sockjs-client's own options, e.g. {transports: ['xhr-streaming']}
  minDelay: 500,        // backoff: the first retry waits up to this long (ms)
  maxDelay: 30000,      // backoff: no retry waits longer than this (ms)
  timeout: 10000,       // from starting an attempt until `welcome` (ms)
  heartbeatTimeout: 0   // silence that counts as a lost connection; 0: 2 x welcome.hb
};
var FALLBACK_HB = 25000;  // used when a welcome frame carries no usable `hb`
var SEEN_LIMIT = 10000;   // how many delivered message ids are remembered
var CONFIRM_MS = 500;     // a passed deadline is checked once more this much later

// Reasons given to 'disconnect' and 'reconnect' handlers, besides the lowercased
// name of a server error code (e.g. 'heartbeat_timeout' for a 4009 error frame).
var REASONS = {
  CLIENT: 'client',                       // disconnect() was called
  CLOSED: 'transport_closed',             // the transport closed (or failed to open)
  CONNECT_TIMEOUT: 'connect_timeout',     // no welcome within `timeout` ms
  HEARTBEAT_TIMEOUT: 'heartbeat_timeout', // nothing heard for `heartbeatTimeout` ms
  AUTH_FAILED: 'auth_failed',             // the `auth` function threw or rejected
  UNAUTHORIZED: 'unauthorized'            // the server refused the auth data
};

// ------------------------------------------------------------------------ helpers

function now() {
  return Date.now();
}

// Report an exception thrown by user code without letting it unwind our own.
function report(err) {
  setTimeout(function () { throw err; }, 0);
}

// True for {...} literals and Object.create(null), from any window (iframes too).
function isPlainObject(value) {
  if (Object.prototype.toString.call(value) !== '[object Object]') return false;
  var proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

// Full-jitter exponential backoff: random(0, min(maxDelay, minDelay * 2^failures)).
function backoff(failures, minDelay, maxDelay) {
  return Math.random() * Math.min(maxDelay, minDelay * Math.pow(2, Math.min(failures, 30)));
}

var CODE_NAMES = {};
Object.keys(CODES).forEach(function (name) { CODE_NAMES[CODES[name]] = name.toLowerCase(); });

function codeReason(code) {
  return CODE_NAMES[code] || 'error_' + code;
}

function errorMessage(err) {
  return String(err && err.message ? err.message : err);
}

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
  return opts;
}

// The delivered message ids, oldest evicted first (a Set iterates in insertion order).
function RecentIds(limit) {
  this._limit = limit;
  this._ids = new Set();
}

/** Remember `id`; false if it was already known. */
RecentIds.prototype.add = function (id) {
  if (this._ids.has(id)) return false;
  this._ids.add(id);
  if (this._ids.size > this._limit) this._ids.delete(this._ids.values().next().value);
  return true;
};

// The send() promises still waiting for their ack/nack, by ref.
function PendingSends() {
  this._lastRef = 0;
  this._byRef = new Map();
}

/** A fresh ref and the promise that settle(ref, ...) will settle. */
PendingSends.prototype.open = function () {
  var ref = ++this._lastRef;
  var byRef = this._byRef;
  var promise = new Promise(function (resolve, reject) {
    byRef.set(ref, {resolve: resolve, reject: reject});
  });
  return {ref: ref, promise: promise};
};

/** Resolve (ok) or reject the promise of `ref`; false if no send waits for it. */
PendingSends.prototype.settle = function (ref, ok, value) {
  var entry = this._byRef.get(ref);
  if (!entry) return false;
  this._byRef.delete(ref);
  (ok ? entry.resolve : entry.reject)(value);
  return true;
};

/** Reject every waiting promise with a copy of `value`. */
PendingSends.prototype.rejectAll = function (value) {
  var all = this._byRef;
  this._byRef = new Map();
  all.forEach(function (entry) { entry.reject(Object.assign({}, value)); });
};

// ------------------------------------------------------------------------- events

function checkHandler(event, fn) {
  if (EVENTS.indexOf(event) < 0) {
    throw new TypeError('chitchat: unknown event ' + JSON.stringify(event) +
                        ' (known: ' + EVENTS.join(', ') + ')');
  }
  if (typeof fn !== 'function') throw new TypeError('chitchat: handler must be a function');
}

// Handlers by event name, called in registration order. A handler that throws is
// reported (rethrown from a timer) and the others still run.
function Emitter() {
  this._handlers = {};
}

Emitter.prototype.on = function (event, fn) {
  checkHandler(event, fn);
  this._handlers[event] = (this._handlers[event] || []).concat([fn]);
};

Emitter.prototype.off = function (event, fn) {
  var list = this._handlers[event] || [];
  this._handlers[event] = fn === undefined ? [] : list.filter(function (h) { return h !== fn; });
};

Emitter.prototype.emit = function (event, arg) {
  // on/off replace the array, so a handler that (un)registers does not disturb this loop.
  var list = this._handlers[event] || [];
  for (var i = 0; i < list.length; i++) {
    try {
      list[i].call(undefined, arg);
    } catch (err) {
      report(err);
    }
  }
};

// --------------------------------------------------------------------- transports
//
// A transport factory is called once per attempt as factory(url, callbacks), where
// callbacks are {onopen(), onmessage(text), onclose(reason)} (reason: a string or
// {code, reason}), and returns {send(text), close()}. The client ignores any callback
// that comes after it has closed or replaced the transport.

function resolveUrl(url) {
  return new URL(url, window.location.href);
}

/** `url` as the native WebSocket endpoint: <url>/ws with the ws: or wss: scheme. */
function websocketUrl(url) {
  var u = resolveUrl(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  u.pathname = u.pathname.replace(/\/+$/, '') + '/ws';
  u.hash = '';
  return u.href;
}

function sockjsTransport(sockjsOptions) {
  return function (url, callbacks) {
    var SockJS = window.SockJS;
    if (typeof SockJS !== 'function') throw new Error('SockJS is not loaded');
    var sock = new SockJS(resolveUrl(url).href, null, sockjsOptions);
    sock.onopen = function () { callbacks.onopen(); };
    sock.onmessage = function (e) { callbacks.onmessage(e.data); };
    sock.onclose = function (e) { callbacks.onclose({code: e.code, reason: e.reason}); };
    return {
      send: function (text) { sock.send(text); },
      close: function () { sock.close(); }
    };
  };
}

function websocketTransport(url, callbacks) {
  var ws = new WebSocket(websocketUrl(url));
  ws.onopen = function () { callbacks.onopen(); };
  ws.onmessage = function (e) { if (typeof e.data === 'string') callbacks.onmessage(e.data); };
  ws.onclose = function (e) {
    callbacks.onclose({code: e.code, reason: e.reason || 'websocket closed'});
  };
  return {
    send: function (text) { ws.send(text); },
    close: function () { ws.close(); }
  };
}

function transportFactory(opts) {
  if (typeof opts.transport === 'function') return opts.transport;
  return opts.transport === 'websocket' ? websocketTransport : sockjsTransport(opts.sockjs);
}

// -------------------------------------------------------------- the Client
//
// States and the events their transitions emit (only _setState changes the state):
//
//   disconnected --connect()--> connecting      (no event)
//   connecting   --welcome----> connected       emits connect
//   connecting   --failed-----> reconnecting    emits reconnect
//   connected    --lost-------> reconnecting    emits disconnect, then reconnect
//   reconnecting --welcome----> connected       emits connect
//   any --disconnect(), unauthorized, fatal error--> disconnected
//                                               emits disconnect if it was connected
//
// A failed first attempt emits no 'disconnect': that event always pairs with an
// earlier 'connect'. While reconnecting, a failed attempt only schedules the next one,
// so 'disconnect' and 'reconnect' fire once per outage. Events are emitted after the
// client's own bookkeeping, so a handler may call any method (even disconnect()).
//
// Each attempt is a "link": {transport, startedAt, lastHeard, hbTimeout, watchdog,
// overdue}. this._link is the current one; callbacks of any other link are ignored.

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
  this._seen = new RecentIds(SEEN_LIMIT);
  this._pending = new PendingSends();
  this._state = 'disconnected';
  this._link = null;     // the current attempt or connection
  this._retry = null;    // the timer of the next attempt, while reconnecting
  this._failures = 0;    // failed attempts since the last welcome: the backoff exponent
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
 * Close the connection for good: no timers are left and pending send() promises are
 * rejected with {error: 'disconnected'}. Emits 'disconnect' with reason 'client' if
 * it was connected. Returns this.
 */
Client.prototype.disconnect = function () {
  if (this._state === 'disconnected') return this;
  this._drop();
  this._setState('disconnected', REASONS.CLIENT);
  return this;
};

/**
 * Send a chat message. `data` must be a plain, JSON-encodable object. Returns a
 * Promise resolved with the stored Message ({id, user, data, ts}) when the server
 * acks it, or rejected with the nack's meta, {error: 'not_connected'} (now),
 * {error: 'invalid', reason}, {error: 'protocol', code, reason} (an error frame) or
 * {error: 'disconnected'} (connection lost first: it may or may not have been kept).
 */
Client.prototype.send = function (data) {
  if (this._state !== 'connected') return Promise.reject({error: REJECT.NOT_CONNECTED});
  if (!isPlainObject(data)) {
    return Promise.reject({error: REJECT.INVALID, reason: 'data must be a plain object'});
  }
  var entry = this._pending.open();
  var text;
  try {
    text = JSON.stringify({t: 'send', ref: entry.ref, data: data});
  } catch (err) {
    this._pending.settle(entry.ref, false, {error: REJECT.INVALID, reason: errorMessage(err)});
    return entry.promise;
  }
  this._write(this._link, text);
  return entry.promise;
};

/** Call fn(arg) on `event` (connect, disconnect, reconnect, unauthorized, messages, error). */
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

// Start one attempt: get the auth data, open a transport, wait for welcome.
Client.prototype._attempt = function () {
  var self = this;
  var link = {
    transport: null, startedAt: now(), lastHeard: now(), hbTimeout: 0,
    watchdog: null, overdue: false
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
      if (data === undefined) data = null;
      return JSON.stringify({t: 'auth', v: protocol.VERSION, data: data});
    })
    .then(function (frame) {
      if (self._link !== link) return;
      var transport = self._openTransport(self._url, {
        onopen: guard(function () {
          link.lastHeard = now();
          self._write(link, frame);
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
  var welcomed = this._state === 'connected';
  var deadline = welcomed
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
  } else if (welcomed) {
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

// Close the current link (if any) and cancel every timer; pending sends are lost.
Client.prototype._drop = function () {
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
  this._pending.rejectAll({error: REJECT.DISCONNECTED});
};

// The current attempt failed or the connection was lost: retry after a backoff delay.
// `error` ({code, reason}) is emitted as 'error' when given; it is given for every
// failure before welcome and for a server error frame, not for the loss of a
// connection that was up.
Client.prototype._lost = function (reason, error) {
  var self = this;
  this._drop();
  var delay = backoff(this._failures++, this._options.minDelay, this._options.maxDelay);
  this._retry = setTimeout(function () {
    self._retry = null;
    self._attempt();
  }, delay);
  this._setState('reconnecting', reason);
  if (error) this._events.emit('error', error);
};

// The server ended it (unauthorized, fatal error): disconnected, no retry. The
// event comes after the state change, so a handler may call connect() again.
Client.prototype._stop = function (reason, event, arg) {
  this._drop();
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
    case 'ping': this._write(link, '{"t":"pong"}'); break;
    case 'welcome': this._onWelcome(link, frame); break;
    case 'unauthorized': this._stop(REASONS.UNAUTHORIZED, 'unauthorized', frame.meta); break;
    case 'messages': this._onMessages(frame); break;
    case 'ack': this._pending.settle(frame.ref, true, frame.msg); break;
    case 'nack': this._pending.settle(frame.ref, false, frame.meta); break;
    case 'error': this._onError(frame); break;
    default: break;  // 'pong' and frame types of later versions
  }
};

Client.prototype._onWelcome = function (link, frame) {
  if (this._state === 'connected') return;
  var hb = typeof frame.hb === 'number' && frame.hb > 0 ? frame.hb : FALLBACK_HB;
  link.hbTimeout = this._options.heartbeatTimeout || 2 * hb;
  this._failures = 0;
  this._setState('connected', {user: frame.user, meta: frame.meta});
  if (this._link === link) this._watch(link);  // now on the heartbeat deadline
};

// Deliver the messages this client has not delivered yet (history is resent on
// every reconnect). A Message without an id cannot be checked and is delivered.
Client.prototype._onMessages = function (frame) {
  if (this._state !== 'connected' || !Array.isArray(frame.list)) return;
  var seen = this._seen;
  var fresh = frame.list.filter(function (msg) {
    return msg !== null && typeof msg === 'object' && (msg.id == null || seen.add(msg.id));
  });
  if (fresh.length) this._events.emit('messages', fresh);
};

Client.prototype._onError = function (frame) {
  var code = Number(frame.code) || 0;
  var err = {code: code, reason: String(frame.reason || '')};
  var hasRef = typeof frame.ref === 'number';
  if (hasRef) err.ref = frame.ref;
  if (code === CODES.HEARTBEAT_TIMEOUT) {
    this._lost(codeReason(code), err);
  } else if (frame.fatal === true || protocol.FATAL_CODES.indexOf(code) >= 0) {
    this._stop(codeReason(code), 'error', err);
  } else {
    if (hasRef) {
      this._pending.settle(frame.ref, false,
                           {error: REJECT.PROTOCOL, code: code, reason: err.reason});
    }
    this._events.emit('error', err);
  }
};

// ----------------------------------------------------------------- module API
//
// chitchat.connect(url, options) makes a new Client and connects it; the other
// module-level functions act on that client (the last one made this way). A second
// chitchat.connect() disconnects the previous module-level client.
//
// chitchat.on()/off() register "module-level" handlers: they are attached to the
// current module-level client and remembered, so that handlers registered BEFORE
// the first chitchat.connect() (queued) and every later chitchat.connect() get them.
// Handlers registered on a Client object directly stay on that client.

var moduleClient = null;
var moduleHandlers = [];  // [event, fn] pairs, in registration order

var chitchat = {
  version: VERSION,
  protocol: protocol,
  Client: Client,

  /** Connect to the chitchat server at `url` with `options`; returns the new Client. */
  connect: function (url, options) {
    var client = new Client(url, options);
    if (moduleClient) moduleClient.disconnect();
    moduleHandlers.forEach(function (pair) { client.on(pair[0], pair[1]); });
    moduleClient = client;
    return client.connect();
  },

  /** Call fn on `event` of the module-level client, present and future. */
  on: function (event, fn) {
    checkHandler(event, fn);
    moduleHandlers.push([event, fn]);
    if (moduleClient) moduleClient.on(event, fn);
    return chitchat;
  },

  /** Forget a handler given to chitchat.on (every handler of `event` if fn is omitted). */
  off: function (event, fn) {
    var keep = [];
    moduleHandlers.forEach(function (pair) {
      if (pair[0] !== event || (fn !== undefined && pair[1] !== fn)) keep.push(pair);
      else if (moduleClient) moduleClient.off(event, pair[1]);  // not the client's own
    });
    moduleHandlers = keep;
    return chitchat;
  },

  /** Client.send on the module-level client; {error: 'not_connected'} before connect(). */
  send: function (data) {
    return moduleClient ? moduleClient.send(data) : Promise.reject({error: REJECT.NOT_CONNECTED});
  },

  /** Client.disconnect on the module-level client. */
  disconnect: function () {
    if (moduleClient) moduleClient.disconnect();
    return chitchat;
  },

  state: function () { return moduleClient ? moduleClient.state() : 'disconnected'; },
  isConnected: function () { return chitchat.state() === 'connected'; },
  isConnecting: function () { return chitchat.state() === 'connecting'; },
  isDisconnected: function () { return chitchat.state() === 'disconnected'; },
  isReconnecting: function () { return chitchat.state() === 'reconnecting'; }
};

window.chitchat = chitchat;
