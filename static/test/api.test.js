// The module-level API (window.chitchat) and what loading the bundle does.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const vm = require('node:vm');
const {clientSource} = require('../build.js');
const {flush, info, load, fakeTransports, plain} = require('./fakes.js');

test('loading the client defines window.chitchat and nothing else, and starts no timer', () => {
  const timers = [];
  const context = {setTimeout: (...a) => timers.push(a), clearTimeout() {}};
  context.window = context;
  vm.createContext(context);
  const before = Object.keys(context);
  vm.runInContext(clientSource(), context);
  assert.deepEqual(Object.keys(context).filter((k) => !before.includes(k)), ['chitchat']);
  assert.deepEqual(timers, []);
});

test('module-level API: handlers queued before connect, acting on the last client', async () => {
  const {chitchat, window} = load();
  const made = [];
  const factory = (url, cb) => { const t = fakeTransports(); const x = t.factory(url, cb); made.push(x); return x; };
  const seen = [];
  const onConnect = (info) => seen.push(info.user);
  chitchat.on('connect', onConnect);
  assert.equal(chitchat.state(), 'disconnected');
  await assert.rejects(chitchat.send({a: 1}), (e) => e.error === 'not_connected');
  const c1 = chitchat.connect('/chat', {transport: factory});
  assert.ok(c1 instanceof chitchat.Client);
  await flush();
  made[0].welcome();
  assert.deepEqual(seen, ['ann']);
  assert.ok(chitchat.isConnected());
  const c2 = chitchat.connect('/chat', {transport: factory});
  assert.ok(c1.isDisconnected() && made[0].closed, 'the previous module-level client is closed');
  await flush();
  made[1].welcome();
  assert.deepEqual(seen, ['ann', 'ann']);
  chitchat.off('connect', onConnect);
  chitchat.disconnect();
  assert.ok(c2.isDisconnected());
  assert.equal(window.chitchat.version, '0.1.0');
  assert.equal(chitchat.protocol.VERSION, 1);
});

test('module-level methods mirror the last client; before connect() they refuse or report nothing', async () => {
  const {chitchat} = load();
  for (const name of ['send', 'join', 'leave', 'history', 'markRead', 'edit', 'remove', 'react']) {
    await assert.rejects(chitchat[name]('dev', 'x', '👍'), (e) => e.error === 'not_connected', name);
  }
  assert.deepEqual(plain([chitchat.rooms(), chitchat.members('dev'), chitchat.pending()]), [[], [], []]);
  assert.equal(chitchat.typing('dev'), undefined);
  assert.deepEqual([chitchat.isDisconnected(), chitchat.isConnected(), chitchat.isReconnecting(), chitchat.isConnecting()],
                   [true, false, false, false]);

  const transports = fakeTransports();
  const seen = [];
  chitchat.on('presence', (p) => seen.push(p.room));
  chitchat.connect('/chat', {transport: transports.factory});
  assert.ok(chitchat.isConnecting());
  const early = chitchat.send({text: 'early'}).then(() => 'resolved', (e) => e.error);
  assert.deepEqual(plain(chitchat.pending()).map((p) => [p.data.text, p.state]), [['early', 'queued']]);
  await flush();
  const t = transports.last();
  t.welcome({room: info('main')});
  assert.deepEqual(seen, ['main']);
  const joined = chitchat.join('dev', {k: 1});
  t.ack(t.last('join'), info('dev', {members: ['ann', 'bob']}));
  await joined;
  assert.deepEqual(plain(chitchat.rooms()), ['main', 'dev']);
  assert.deepEqual(plain(chitchat.members('dev')), ['ann', 'bob']);
  chitchat.typing('dev');
  const open = [
    chitchat.markRead('dev', 1), chitchat.history('dev', {limit: 5}), chitchat.edit('dev', 'm', {a: 1}),
    chitchat.remove('dev', 'm'), chitchat.react('dev', 'm', '👍'),
  ].map((p) => p.then(() => 'resolved', (e) => e.error));
  chitchat.leave('dev');
  assert.deepEqual(t.frames().slice(1).map((f) => f.t),
                   ['send', 'join', 'typing', 'read', 'history', 'edit', 'remove', 'react', 'leave']);
  chitchat.disconnect();
  assert.deepEqual(await Promise.all(open.concat([early])), Array(6).fill('disconnected'));
});
