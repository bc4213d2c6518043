/*
 * Helpers shared by the other fragments: time, error reporting, value checks, ids,
 * backoff, the token bucket, settle-once promises and the event emitter.
 *
 * A build fragment, not a module: static/build.js concatenates src/*.js into one
 * strict-mode function scope (protocol.js first, wrapped as `protocol`).
 */
/* global protocol */

var VERSION = '0.1.0';
var CODES = protocol.CODES;
var LIMITS = protocol.LIMITS;
var REJECT = protocol.CLIENT_REJECTIONS;

var EVENTS = [
  'connect', 'disconnect', 'reconnect', 'unauthorized', 'messages', 'error',
  'presence', 'typing', 'removed', 'reset', 'read', 'edit', 'remove', 'reactions'
];

function now() {
  return Date.now();
}

// Report an exception thrown by user code without letting it unwind our own.
function report(err) {
  setTimeout(function () { throw err; }, 0);
}

function errorMessage(err) {
  return String(err && err.message ? err.message : err);
}

// True for {...} literals and Object.create(null), from any window (iframes too).
function isPlainObject(value) {
  if (Object.prototype.toString.call(value) !== '[object Object]') return false;
  var proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** An integer the server accepts (0 .. 2^53 - 1), at least `min`. */
function isWireInt(value, min) {
  return typeof value === 'number' && Math.floor(value) === value &&
         value >= (min || 0) && value <= 9007199254740991;
}

var CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function codePoints(text) {
  return Array.from(text).length;
}

/** The wire's rule for a room name: 1..200 code points, no control characters. */
function isRoomName(name) {
  if (typeof name !== 'string' || !name || CONTROL.test(name)) return false;
  return codePoints(name) <= LIMITS.ROOM_NAME;
}

/** The wire's rule for an emoji: 1..32 code points, no white space or control characters. */
function isEmoji(text) {
  if (typeof text !== 'string' || !text || CONTROL.test(text) || /\s/.test(text)) return false;
  return codePoints(text) <= LIMITS.EMOJI;
}

/** The rejection {error: 'protocol', code, reason} an error frame (or our own check) gives. */
function protocolError(code, reason) {
  return {error: REJECT.PROTOCOL, code: code, reason: reason};
}

/** What is wrong with `name` as a request's room (null: no default room), or null. */
function checkRoom(name) {
  if (name === null || name === undefined) {
    return protocolError(CODES.NOT_JOINED, 'not in a default room');
  }
  return isRoomName(name) ? null : protocolError(CODES.BAD_ROOM, 'bad room name');
}

var CID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
var CID_LENGTH = 20;  // 62^20 ~ 2^119: no two sends of a user collide

/**
 * A fresh cid: 20 characters of [A-Za-z0-9], from crypto.getRandomValues when the page
 * has it (bytes >= 248 are drawn again, so every character is equally likely).
 */
function makeCid() {
  var source = typeof crypto !== 'undefined' && crypto && crypto.getRandomValues ? crypto : null;
  var out = '';
  while (out.length < CID_LENGTH) {
    if (source) {
      var bytes = source.getRandomValues(new Uint8Array(CID_LENGTH));
      for (var i = 0; i < bytes.length && out.length < CID_LENGTH; i++) {
        if (bytes[i] < 248) out += CID_ALPHABET.charAt(bytes[i] % 62);
      }
    } else {
      out += CID_ALPHABET.charAt(Math.min(61, Math.floor(Math.random() * 62)));
    }
  }
  return out;
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

/**
 * A promise with its resolve and reject, each effective only the first time: whatever
 * path answers a request first settles it, and every later answer is a no-op.
 */
function Deferred() {
  var self = this;
  this.settled = false;
  this.promise = new Promise(function (resolve, reject) {
    self._resolve = resolve;
    self._reject = reject;
  });
}

Deferred.prototype.resolve = function (value) {
  if (this.settled) return;
  this.settled = true;
  this._resolve(value);
};

Deferred.prototype.reject = function (value) {
  if (this.settled) return;
  this.settled = true;
  this._reject(value);
};

function rejected(value) {
  return Promise.reject(value);
}

/**
 * The client's copy of the server's send limit, [per second, burst]: `burst` tokens,
 * refilled at `rate` a second. take() spends one if there is one; wait() is the time
 * until there is.
 */
function TokenBucket(rate, burst) {
  this._rate = rate;
  this._burst = burst;
  this._tokens = burst;
  this._at = now();
}

/** A bucket for welcome.limits.send, or null (no pacing) when it is absent or unusable. */
TokenBucket.fromLimit = function (limit) {
  if (!Array.isArray(limit) || !(limit[0] > 0) || !(limit[1] >= 1)) return null;
  return new TokenBucket(limit[0], limit[1]);
};

TokenBucket.prototype._refill = function () {
  var t = now();
  this._tokens = Math.min(this._burst, this._tokens + (t - this._at) * this._rate / 1000);
  this._at = t;
};

TokenBucket.prototype.take = function () {
  this._refill();
  if (this._tokens < 1) return false;
  this._tokens -= 1;
  return true;
};

TokenBucket.prototype.wait = function () {
  this._refill();
  return Math.max(0, Math.ceil((1 - this._tokens) * 1000 / this._rate));
};

// The delivered push ids, oldest evicted first (a Set iterates in insertion order).
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
