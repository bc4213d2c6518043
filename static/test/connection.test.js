// The Client's state machine and transports: attempts, backoff, the watchdog,
// heartbeat answers, close codes; against a recording fake transport and a fake clock.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const {flush, tick, load, setup, connected, plain} = require('./fakes.js');

test('protocol constants are exactly the agreed ones, with the client rejection reasons', () => {
  const p = require('../src/protocol.js');
  assert.deepEqual(Object.keys(p), ['VERSION', 'CLIENT_FRAMES', 'SERVER_FRAMES', 'CODES', 'FATAL_CODES', 'LIMITS']);
  assert.deepEqual(plain(p), {
    VERSION: 1,
    CLIENT_FRAMES: ['auth', 'send', 'join', 'leave', 'typing', 'history', 'read', 'edit', 'remove', 'react', 'ping', 'pong'],
    SERVER_FRAMES: ['welcome', 'unauthorized', 'messages', 'edit', 'remove', 'reactions', 'reset', 'joined', 'removed',
                    'presence', 'typing', 'read', 'ack', 'nack', 'ping', 'pong', 'error'],
    CODES: {MALFORMED: 4000, UNKNOWN_TYPE: 4001, TOO_LARGE: 4002, NOT_AUTHORIZED: 4003, ORIGIN_REFUSED: 4004,
            AUTH_TIMEOUT: 4005, UNSUPPORTED_VERSION: 4006, INVALID: 4007, ALREADY_AUTHORIZED: 4008,
            HEARTBEAT_TIMEOUT: 4009, FLOODED: 4010, TOO_DEEP: 4011, FLOOD_CLOSED: 4012, TOO_MANY_CONNECTIONS: 4013,
            RESTARTING: 4014, BAD_ROOM: 4015, NOT_JOINED: 4016},
    FATAL_CODES: [4004, 4005, 4006, 4009, 4012, 4013, 4014],
    LIMITS: {ROOM_NAME: 200, CID: 64, EMOJI: 32, REACTIONS: 20, HISTORY: 100}
  });
  assert.deepEqual(plain(p.CLIENT_REJECTIONS), {
    NOT_CONNECTED: 'not_connected', OUTBOX_FULL: 'outbox_full', DISCONNECTED: 'disconnected',
    INVALID: 'invalid', PROTOCOL: 'protocol'
  });
  assert.ok(Object.isFrozen(p.CODES) && Object.isFrozen(p.LIMITS));
});

test('a client does not connect until connect() and sends auth first on open', async () => {
  let calls = 0;
  const {client, transports, events} = setup({auth: () => Promise.resolve({token: 't' + ++calls})});
  await flush();
  assert.equal(transports.made.length, 0);
  assert.equal(client.state(), 'disconnected');
  client.connect();
  assert.equal(client.state(), 'connecting');
  await flush();
  const t = transports.last();
  assert.equal(t.url, '/chat');
  t.open();
  assert.deepEqual(t.sent, [{t: 'auth', v: 1, data: {token: 't1'}}]);
  t.receive({t: 'welcome', user: 'ann', meta: {role: 'x'}, hb: 1000});
  assert.deepEqual(plain(events), [['connect', {user: 'ann', meta: {role: 'x'}}]]);
  assert.ok(client.isConnected());
});

test('a lost connection emits disconnect and reconnect once per outage, with full-jitter backoff', async () => {
  const {client, transports, events, clock} = await connected({minDelay: 100, maxDelay: 1000});
  transports.last().drop({code: 1006, reason: 'gone'});
  assert.deepEqual(plain(events), [['disconnect', 'transport_closed'], ['reconnect', 'transport_closed']]);
  assert.ok(client.isReconnecting());
  events.length = 0;
  // Math.random() is 1 here, so each delay is the top of its range: 100, 200, 400, 800, 1000.
  for (const delay of [100, 200, 400, 800, 1000, 1000]) {
    assert.deepEqual(clock.pending(), [delay]);
    const before = transports.made.length;
    await tick(clock, delay);
    assert.equal(transports.made.length, before + 1);
    transports.last().drop({code: 1002, reason: 'Cannot connect to server'});
  }
  assert.deepEqual(plain(events).map((e) => e[0]), ['error', 'error', 'error', 'error', 'error', 'error']);
  assert.deepEqual(plain(events[0][1]), {code: 1002, reason: 'Cannot connect to server'});
  events.length = 0;
  await tick(clock, 1000);
  transports.last().welcome();
  assert.deepEqual(plain(events), [['connect', {user: 'ann', meta: {m: 1}}]]);
  assert.ok(client.isConnected());
  transports.last().drop();
  assert.deepEqual(clock.pending().filter((d) => d > 50), [100], 'backoff restarts after a welcome');
});

test('full jitter draws the delay from [0, cap)', async () => {
  const {transports, clock} = await (async () => {
    const env = setup({minDelay: 400}, {random: 0.25});
    env.client.connect();
    await flush();
    env.transports.last().drop();
    return env;
  })();
  assert.deepEqual(clock.pending().filter((d) => d < 10000), [100]);
  assert.equal(transports.made.length, 1);
});

test('a first connection that fails goes to reconnecting with an error, without disconnect', async () => {
  const {client, transports, events} = setup();
  client.connect();
  await flush();
  transports.last().drop({code: 2000, reason: 'All transports failed'});
  assert.deepEqual(plain(events), [['reconnect', 'transport_closed'], ['error', {code: 2000, reason: 'All transports failed'}]]);
  assert.ok(client.isReconnecting());
});

test('a string close reason from a custom transport becomes {code: 0, reason}', async () => {
  const {client, transports, events} = setup();
  client.connect();
  await flush();
  transports.last().drop('refused');
  assert.deepEqual(plain(events[1]), ['error', {code: 0, reason: 'refused'}]);
});

test('pushes (room null) already delivered are dropped by id, also across reconnects', async () => {
  const {transports, events, clock} = await connected();
  const m = (id) => ({id, user: 'ann', data: {n: id}, ts: 1});
  transports.last().receive({t: 'messages', list: [m('a'), m('b')]});
  transports.last().receive({t: 'messages', list: [m('b'), m('c')]});
  transports.last().receive({t: 'messages', list: [m('c')]});
  transports.last().drop();
  await tick(clock, 1000);
  transports.last().welcome();
  transports.last().receive({t: 'messages', list: [m('a'), m('b'), m('c'), m('d')]});
  const delivered = plain(events).filter((e) => e[0] === 'messages').map((e) => e[1].map((x) => x.id));
  assert.deepEqual(delivered, [['a', 'b'], ['c'], ['d']]);
});

test('the set of delivered push ids is bounded: the oldest is forgotten first', async () => {
  const {transports, events} = await connected();
  const list = [];
  for (let i = 0; i <= 10000; i++) list.push({id: 'id' + i, user: null, data: {}, ts: 0});
  transports.last().receive({t: 'messages', list});
  events.length = 0;
  transports.last().receive({t: 'messages', list: [list[0], list[1], list[10000]]});
  // id0 was evicted by id10000; remembering it again evicts id1, the oldest then.
  assert.deepEqual(plain(events).map((e) => e[1].map((x) => x.id)), [['id0', 'id1']]);
});

test('unauthorized stops for good: no retry, no timer left', async () => {
  const {client, transports, events, clock} = setup({auth: {token: 'bad'}});
  client.connect();
  await flush();
  transports.last().open();
  transports.last().receive({t: 'unauthorized', meta: {reason: 'expired'}});
  assert.deepEqual(plain(events), [['unauthorized', {reason: 'expired'}]]);
  assert.ok(client.isDisconnected());
  assert.ok(transports.last().closed);
  assert.deepEqual(clock.pending(), []);
  await tick(clock, 120000);
  assert.equal(transports.made.length, 1);
});

for (const code of [4004, 4005, 4006]) {
  test(`fatal error ${code} stops for good`, async () => {
    const {client, transports, events, clock} = setup();
    client.connect();
    await flush();
    transports.last().open();
    transports.last().receive({t: 'error', code, reason: 'no', fatal: true});
    transports.last().drop();  // the server's close that follows: ignored
    assert.deepEqual(plain(events), [['error', {code, reason: 'no'}]]);
    assert.ok(client.isDisconnected());
    assert.deepEqual(clock.pending(), []);
  });
}

test('error 4009 from the server is a lost connection', async () => {
  const {client, transports, events} = await connected();
  transports.last().receive({t: 'error', code: 4009, reason: 'silent', fatal: true});
  assert.deepEqual(plain(events), [
    ['disconnect', 'heartbeat_timeout'], ['reconnect', 'heartbeat_timeout'], ['error', {code: 4009, reason: 'silent'}],
  ]);
  assert.ok(client.isReconnecting());
  assert.ok(transports.last().closed);
});

test('4014 restarting: reconnects after a random delay in [0, retry), with no error event', async () => {
  for (const [random, delay] of [[0, 0], [0.5, 4000], [0.999, 7992]]) {
    const {client, transports, events, clock} = await connected({minDelay: 100}, {}, {random});
    transports.last().receive({t: 'error', code: 4014, reason: 'restarting', fatal: true, retry: 8000});
    transports.last().drop();  // the server's close that follows: ignored
    assert.deepEqual(plain(events), [['disconnect', 'restarting'], ['reconnect', 'restarting']]);
    assert.ok(client.isReconnecting());
    assert.deepEqual(clock.pending(), [delay]);
    await tick(clock, delay);
    assert.equal(transports.made.length, 2);
    transports.last().drop({code: 1002, reason: 'still down'});
    // The restart was no failure: the backoff that follows starts at minDelay.
    assert.deepEqual(clock.pending().map(Math.round), [Math.round(100 * random)]);
  }
});

test('4014: attempts that fail while the server restarts emit no error, later ones do', async () => {
  const {transports, events, clock} = await connected({minDelay: 100, maxDelay: 1000}, {}, {random: 1});
  transports.last().receive({t: 'error', code: 4014, reason: 'restarting', fatal: true, retry: 2000});
  events.length = 0;
  // Within retry + maxDelay (3 s): the server is expected back; failing is no error.
  while (clock.time < 1000000 + 2500) {
    await tick(clock, clock.pending()[0]);
    transports.last().drop({code: 1002, reason: 'still down'});
  }
  assert.deepEqual(plain(events), []);
  // Past it, the outage is reported as any other.
  await tick(clock, 1000);
  await tick(clock, clock.pending()[0]);
  transports.last().drop({code: 1002, reason: 'still down'});
  assert.deepEqual(plain(events).map((e) => e[0]), ['error']);
  // And a welcome ends the quiet period for good.
  await tick(clock, clock.pending()[0]);
  transports.last().welcome();
  events.length = 0;
  transports.last().drop({code: 1006, reason: 'gone'});
  await tick(clock, clock.pending()[0]);
  transports.last().drop({code: 1002, reason: 'down'});
  assert.deepEqual(plain(events).map((e) => e[0]), ['disconnect', 'reconnect', 'error']);
});

test('4014 without retry falls back on the backoff', async () => {
  const {transports, events, clock} = await connected({minDelay: 300});
  transports.last().receive({t: 'error', code: 4014, reason: 'restarting', fatal: true});
  assert.deepEqual(clock.pending(), [300]);
  assert.deepEqual(plain(events).map((e) => e[0]), ['disconnect', 'reconnect']);
});

test('4012 flood closed: an error, then a retry only after half to all of maxDelay', async () => {
  for (const [random, delay] of [[0, 10000], [0.5, 15000], [0.999, 19990]]) {
    const {client, transports, events, clock} = await connected({maxDelay: 20000}, {}, {random});
    transports.last().receive({t: 'error', code: 4012, reason: 'kept flooding', fatal: true});
    assert.deepEqual(plain(events), [
      ['disconnect', 'flood_closed'], ['reconnect', 'flood_closed'], ['error', {code: 4012, reason: 'kept flooding'}],
    ]);
    assert.deepEqual(clock.pending(), [delay]);
    await tick(clock, delay - 1);
    assert.equal(transports.made.length, 1);
    await tick(clock, 1);
    assert.equal(transports.made.length, 2);
    assert.ok(client.isReconnecting());
  }
});

test('4013 too many connections: an error each time, with the growing backoff', async () => {
  const {client, transports, events, clock} = await connected({minDelay: 100, maxDelay: 1000});
  transports.last().receive({t: 'error', code: 4013, reason: 'cap', fatal: true});
  for (const delay of [100, 200, 400]) {
    assert.deepEqual(clock.pending(), [delay]);
    await tick(clock, delay);
    transports.last().open();
    transports.last().receive({t: 'error', code: 4013, reason: 'cap', fatal: true});
  }
  assert.deepEqual(plain(events).map((e) => e.join(':')), [
    'disconnect:too_many_connections', 'reconnect:too_many_connections', 'error:[object Object]',
    'error:[object Object]', 'error:[object Object]', 'error:[object Object]',
  ]);
  assert.deepEqual(plain(events[2][1]), {code: 4013, reason: 'cap'});
  assert.ok(client.isReconnecting());
});

test('an unknown code with fatal: true stops for good', async () => {
  const {client, transports, clock} = await connected();
  transports.last().receive({t: 'error', code: 4999, reason: 'new', fatal: true});
  assert.ok(client.isDisconnected());
  assert.deepEqual(clock.pending(), []);
});

test('a non-fatal error is reported and the connection stays up', async () => {
  const {client, transports, events} = await connected();
  transports.last().receive({t: 'error', code: 4000, reason: 'bad json', fatal: false});
  assert.deepEqual(plain(events), [['error', {code: 4000, reason: 'bad json'}]]);
  assert.ok(client.isConnected());
});

test('pings are answered and keep the connection; silence past 2 x hb loses it', async () => {
  const {client, transports, events, clock} = await connected();
  const t = transports.last();
  for (let i = 0; i < 5; i++) {
    await tick(clock, 1000);
    t.receive({t: 'ping'});
  }
  assert.equal(t.sent.filter((f) => f.t === 'pong').length, 5);
  assert.ok(client.isConnected());
  await tick(clock, 1999);
  assert.ok(client.isConnected());
  await tick(clock, 2);
  assert.ok(client.isConnected(), 'a passed deadline is confirmed once more, 500 ms later');
  await tick(clock, 500);
  assert.ok(t.closed);
  assert.deepEqual(plain(events), [['disconnect', 'heartbeat_timeout'], ['reconnect', 'heartbeat_timeout']]);
});

test('the heartbeatTimeout option overrides 2 x hb', async () => {
  const {client, clock} = await connected({heartbeatTimeout: 5000});
  await tick(clock, 4999);
  assert.ok(client.isConnected());
  await tick(clock, 502);
  assert.ok(client.isReconnecting());
});

test('a late (throttled) watchdog timer still judges by the last frame time', async () => {
  const {client, transports, clock} = await connected();
  // The timer fires late, but a frame arrived meanwhile: still connected.
  clock.time += 1500;
  transports.last().receive({t: 'pong'});
  await tick(clock, 1000);
  assert.ok(client.isConnected());
});

test('frames queued behind a watchdog that fired after a stall keep the connection', async () => {
  const {client, transports, clock} = await connected();
  clock.time += 10000;  // the page was frozen: the watchdog is long overdue
  await tick(clock, 0);
  assert.ok(client.isConnected());
  transports.last().receive({t: 'ping'});  // queued while frozen, handled after the timer
  await tick(clock, 1000);
  assert.ok(client.isConnected());
  await tick(clock, 1000 + 500);
  assert.ok(client.isReconnecting());
});

test('no welcome within timeout: error and retry', async () => {
  const {client, transports, events, clock} = setup({timeout: 3000});
  client.connect();
  await flush();
  transports.last().open();
  await tick(clock, 3501);
  assert.ok(transports.made[0].closed);
  assert.deepEqual(plain(events), [['reconnect', 'connect_timeout'], ['error', {code: 0, reason: 'no welcome within 3000 ms'}]]);
  assert.ok(client.isReconnecting());
});

test('an auth function that fails is an error and is retried; it is called on every attempt', async () => {
  let calls = 0;
  const {client, transports, events, clock} = setup({auth: () => { calls++; if (calls === 1) throw new Error('no token'); return 'tok'; }});
  client.connect();
  await flush();
  assert.equal(transports.made.length, 0);
  assert.deepEqual(plain(events), [['reconnect', 'auth_failed'], ['error', {code: 0, reason: 'auth: no token'}]]);
  await tick(clock, 500);
  transports.last().open();
  assert.deepEqual(transports.last().sent, [{t: 'auth', v: 1, data: 'tok'}]);
  assert.equal(calls, 2);
});

test('disconnect() stops everything and ignores the old transport', async () => {
  const {client, transports, events, clock} = await connected();
  const t = transports.last();
  const pending = client.send({text: 'x'});
  client.disconnect();
  assert.deepEqual(plain(events), [['disconnect', 'client']]);
  assert.ok(t.closed);
  assert.deepEqual(clock.pending(), []);
  await assert.rejects(pending, (e) => e.error === 'disconnected');
  t.receive({t: 'messages', list: [{id: 'z'}]});
  t.callbacks.onclose({code: 1000});
  assert.equal(events.length, 1);
  assert.ok(client.isDisconnected());
  await tick(clock, 60000);
  assert.equal(transports.made.length, 1);
});

test('disconnect() while reconnecting cancels the retry and emits nothing more', async () => {
  const {client, transports, events, clock} = await connected();
  transports.last().drop();
  events.length = 0;
  client.disconnect();
  assert.deepEqual(events, []);
  assert.deepEqual(clock.pending(), []);
});

test('a handler may call disconnect() from inside a transition', async () => {
  const {client, transports, events, clock} = await connected();
  client.on('disconnect', () => client.disconnect());
  transports.last().drop();
  assert.deepEqual(plain(events), [['disconnect', 'transport_closed']]);
  assert.ok(client.isDisconnected());
  assert.deepEqual(clock.pending(), []);
});

test('a throwing handler does not stop the others, and is reported', async () => {
  const {client, transports, clock} = setup();
  const seen = [];
  client.on('connect', () => { throw new Error('boom'); });
  client.on('connect', () => seen.push('second'));
  client.connect();
  await flush();
  transports.last().welcome();
  assert.deepEqual(seen, ['second']);
  assert.ok(client.isConnected());
  assert.ok(clock.pending().includes(0), 'the error is rethrown from a timer');
});

test('off() removes a handler; unknown events are refused', () => {
  const {client} = setup();
  const fn = () => {};
  client.on('messages', fn).off('messages', fn);
  assert.throws(() => client.on('mesages', fn), {name: 'TypeError'});
  assert.throws(() => client.on('messages', 'nope'), {name: 'TypeError'});
});

test('websocket transport: <url>/ws with the scheme of the page', async () => {
  for (const [href, url, expected] of [
    ['https://example.com/app/', '/chat', 'wss://example.com/chat/ws'],
    ['http://localhost:8888/', '/chat/', 'ws://localhost:8888/chat/ws'],
    ['http://localhost:8888/', 'https://other.example/x', 'wss://other.example/x/ws'],
  ]) {
    const env = load({href});
    const sockets = [];
    env.window.WebSocket = function (u) { this.url = u; sockets.push(this); };
    env.window.WebSocket.prototype.send = function () {};
    env.window.WebSocket.prototype.close = function () {};
    new env.chitchat.Client(url, {transport: 'websocket'}).connect();
    await flush();
    assert.equal(sockets[0].url, expected);
  }
});

test('sockjs transport: gets the absolute url and the sockjs options', async () => {
  const env = load({href: 'http://localhost:8888/page'});
  const made = [];
  env.window.SockJS = function (url, _reserved, options) { made.push([url, options]); };
  env.window.SockJS.prototype.send = function () {};
  env.window.SockJS.prototype.close = function () {};
  new env.chitchat.Client('/chat', {sockjs: {transports: ['xhr-streaming']}}).connect();
  await flush();
  assert.deepEqual(plain(made), [['http://localhost:8888/chat', {transports: ['xhr-streaming']}]]);
});

test('bad options are refused at construction', () => {
  const {chitchat} = load();
  assert.throws(() => new chitchat.Client('/chat', {transport: 'carrier-pigeon'}), {name: 'TypeError'});
  assert.throws(() => new chitchat.Client('/chat', {timeout: 0}), {name: 'TypeError'});
  assert.throws(() => new chitchat.Client('/chat', {minDelay: -1}), {name: 'TypeError'});
  assert.throws(() => new chitchat.Client('/chat', {outbox: 0}), {name: 'TypeError'});
  assert.throws(() => new chitchat.Client('/chat', {outbox: 1.5}), {name: 'TypeError'});
  assert.throws(() => new chitchat.Client(), {name: 'TypeError'});
});
