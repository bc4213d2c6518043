// The fakes the client's unit tests share: a fake clock, a recording fake transport,
// and the client's bundle loaded into a vm context (no browser, no network).
'use strict';

const vm = require('node:vm');
const {webcrypto} = require('node:crypto');
const {clientSource} = require('../build.js');

const SOURCE = clientSource();

// A fake clock: timers run only when the test advances time.
function FakeClock() {
  this.time = 1000000;
  this.timers = new Map();
  this.nextId = 1;
}
FakeClock.prototype.setTimeout = function (fn, delay) {
  const id = this.nextId++;
  this.timers.set(id, {fn, at: this.time + Math.max(0, delay || 0)});
  return id;
};
FakeClock.prototype.clearTimeout = function (id) {
  this.timers.delete(id);
};
/** The delays of the timers still set, shortest first. */
FakeClock.prototype.pending = function () {
  return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
};

// Let promise callbacks (auth, transport creation, .then handlers) run.
function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

// Advance the fake clock by ms, running due timers in order (with microtasks between).
async function tick(clock, ms) {
  const end = clock.time + ms;
  for (;;) {
    await flush();
    let next = null;
    for (const [id, t] of clock.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
    if (!next) break;
    clock.timers.delete(next[0]);
    clock.time = Math.max(clock.time, next[1].at);
    next[1].fn();
  }
  clock.time = end;
  await flush();
}

/** Room info as the server gives it (welcome.room, joined, a join's ack). */
function info(room, extra = {}) {
  return Object.assign({
    room, meta: null, epoch: 'e1', seq: 0, members: ['ann'], unread: 0, lastRead: 0, reads: {}
  }, extra);
}

/** A room's Message at `seq`. */
function msg(room, seq, extra = {}) {
  return Object.assign({id: room + '-' + seq, room, seq, user: 'bob', data: {n: seq}, ts: seq}, extra);
}

// A recording fake transport factory: every attempt is pushed to `made`.
function fakeTransports() {
  const made = [];
  function factory(url, callbacks) {
    const t = {
      url, callbacks, sent: [], raw: [], closed: false,
      send(text) {
        if (this.closed) throw new Error('closed');
        this.raw.push(text);
        this.sent.push(JSON.parse(text));
      },
      close() { this.closed = true; },
      // test-side helpers: what the server does
      open() { callbacks.onopen(); },
      receive(frame) { callbacks.onmessage(typeof frame === 'string' ? frame : JSON.stringify(frame)); },
      drop(why) { this.closed = true; callbacks.onclose(why === undefined ? {code: 1006, reason: 'gone'} : why); },
      welcome(extra = {}) {
        this.open();
        this.receive(Object.assign({t: 'welcome', user: 'ann', meta: {m: 1}, hb: 1000, room: null, limits: null}, extra));
      },
      /** The frames sent of type `type` (every frame without one). */
      frames(type) { return type ? this.sent.filter((f) => f.t === type) : this.sent; },
      last(type) { const list = this.frames(type); return list[list.length - 1]; },
      ack(frame, fields = {}) { this.receive(Object.assign({t: 'ack', ref: frame.ref}, fields)); },
      nack(frame, meta) { this.receive({t: 'nack', ref: frame.ref, meta}); },
      error(frame, code, extra = {}) {
        this.receive(Object.assign({t: 'error', code, reason: 'no', fatal: false, ref: frame.ref}, extra));
      }
    };
    made.push(t);
    return t;
  }
  return {made, factory, last: () => made[made.length - 1]};
}

const EVENTS = [
  'connect', 'disconnect', 'reconnect', 'unauthorized', 'messages', 'error',
  'presence', 'typing', 'removed', 'reset', 'read', 'edit', 'remove', 'reactions'
];

// A fresh chitchat in its own context: {chitchat, clock, window}. opts.random fixes
// Math.random (default 1: each backoff is the top of its range); opts.crypto: false
// leaves crypto out.
function load(opts = {}) {
  const clock = new FakeClock();
  const context = {
    Date: {now: () => clock.time},
    Math: Object.assign(Object.create(Math), {random: () => (opts.random !== undefined ? opts.random : 1)}),
    setTimeout: (fn, d) => clock.setTimeout(fn, d),
    clearTimeout: (id) => clock.clearTimeout(id),
    URL,
    Uint8Array,
    console
  };
  if (opts.crypto !== false) context.crypto = opts.crypto || webcrypto;
  context.window = context;
  context.location = {href: opts.href || 'http://example.com/app/page'};
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  return {chitchat: context.chitchat, clock, window: context};
}

// A client on a fake transport, with every event recorded in order as [name, arg].
function setup(options = {}, loadOpts = {}) {
  const env = load(loadOpts);
  const transports = fakeTransports();
  const client = new env.chitchat.Client('/chat', Object.assign({transport: transports.factory}, options));
  const events = [];
  for (const name of EVENTS) client.on(name, (arg) => events.push([name, arg]));
  /** The recorded events named `name`, as plain data. */
  const seen = (name) => plain(events.filter((e) => e[0] === name).map((e) => e[1]));
  return Object.assign(env, {client, transports, events, seen});
}

/** A connected client (welcome extra fields in `welcome`); events cleared. */
async function connected(options, welcome, loadOpts) {
  const env = setup(options, loadOpts);
  env.client.connect();
  await flush();
  env.transports.last().welcome(welcome);
  env.events.length = 0;
  return env;
}

/** Drop the connection and let the retry open (not welcome) the next one. */
async function reconnect(env, welcome) {
  env.transports.last().drop();
  await tick(env.clock, env.clock.pending().filter((d) => d <= 30000).pop() || 0);
  const t = env.transports.last();
  if (welcome !== false) t.welcome(welcome);
  return t;
}

// Settle-tracking: outcome(promise) records how a promise settled, and how often.
function outcome(promise) {
  const result = {settled: 0, ok: null, value: undefined};
  promise.then((v) => { result.settled++; result.ok = true; result.value = plain(v); },
               (e) => { result.settled++; result.ok = false; result.value = plain(e); });
  return result;
}

const plain = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

module.exports = {FakeClock, flush, tick, info, msg, fakeTransports, load, setup, connected, reconnect, outcome, plain};
