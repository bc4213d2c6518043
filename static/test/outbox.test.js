// send() and the outbox: cids, the queue and its order, the bound, pending(), re-sends
// with the same cid after a drop, pacing, FLOODED answers, and settling exactly once.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const {flush, tick, info, setup, connected, reconnect, outcome, plain} = require('./fakes.js');

const CID = /^[A-Za-z0-9]{16,64}$/;

test('a send while connected goes out at once with a cid, and settles on ack, nack or error', async () => {
  const {client, transports, seen} = await connected();
  const t = transports.last();
  const a = outcome(client.send({text: 'a'}));
  const b = outcome(client.send({text: 'b'}, {room: 'dev'}));
  const c = outcome(client.send({text: 'c'}));
  const [fa, fb, fc] = t.frames('send');
  assert.deepEqual(Object.keys(fa), ['t', 'ref', 'cid', 'data']);
  assert.deepEqual(Object.keys(fb), ['t', 'ref', 'room', 'cid', 'data']);
  assert.ok(t.raw[1].startsWith('{"t":"send","ref":' + fa.ref + ','), 'the TOO_LARGE ref prefix');
  assert.deepEqual([fa.data, fb.room, fb.data], [{text: 'a'}, 'dev', {text: 'b'}]);
  assert.ok(CID.test(fa.cid) && CID.test(fb.cid) && fa.cid !== fb.cid);
  const stored = {id: 'm1', room: 'main', seq: 1, user: 'ann', data: {text: 'a'}, ts: 5};
  t.ack(fa, {msg: stored});
  t.nack(fb, {why: 'no'});
  t.error(fc, 4007, {reason: 'bad'});
  await flush();
  assert.deepEqual([a.ok, a.value], [true, stored]);
  assert.deepEqual([b.ok, b.value], [false, {why: 'no'}]);
  assert.deepEqual([c.ok, c.value], [false, {error: 'protocol', code: 4007, reason: 'bad'}]);
  assert.deepEqual(seen('error'), [{code: 4007, reason: 'bad', ref: fc.ref}]);
  assert.deepEqual(plain(client.pending()), []);
});

test('cids come from crypto.getRandomValues when the page has it, else from Math.random', async () => {
  let calls = 0;
  const crypto = {getRandomValues: (bytes) => { calls++; return require('node:crypto').webcrypto.getRandomValues(bytes); }};
  const {client} = setup({}, {crypto});
  client.connect();
  const cids = new Set();
  for (let i = 0; i < 50; i++) {
    client.send({n: i});
    cids.add(client.pending()[i].cid);
  }
  assert.ok(calls >= 50);
  assert.equal(cids.size, 50);
  for (const cid of cids) assert.match(cid, CID);
  const bare = setup({}, {crypto: false, random: 0.5});
  bare.client.connect();
  bare.client.send({n: 1});
  assert.match(bare.client.pending()[0].cid, CID);
});

test('bad sends are refused at once: not connected, invalid data, a bad room name', async () => {
  const {client} = setup();
  const no = {error: 'not_connected'};
  await assert.rejects(client.send({a: 1}), (e) => (assert.deepEqual(plain(e), no), true));
  client.connect();
  await assert.rejects(client.send('text'), (e) => e.error === 'invalid');
  await assert.rejects(client.send([1]), (e) => e.error === 'invalid');
  const cyclic = {}; cyclic.self = cyclic;
  await assert.rejects(client.send(cyclic), (e) => e.error === 'invalid');
  for (const room of ['', 'a\u0000b', 'x'.repeat(201), 42]) {
    await assert.rejects(client.send({a: 1}, {room}), (e) => e.error === 'protocol' && e.code === 4015);
  }
  assert.deepEqual(plain(client.pending()), []);
  const long = outcome(client.send({a: 1}, {room: '\u{1F600}'.repeat(200)}));  // 200 code points: fine
  assert.equal(client.pending().length, 1);
  client.disconnect();
  await flush();
  assert.deepEqual(long.value, {error: 'disconnected'});
  await assert.rejects(client.send({a: 1}), (e) => (assert.deepEqual(plain(e), no), true));
});

test('while connecting, sends wait in the outbox and go out after the welcome, in order', async () => {
  const {client, transports} = setup();
  client.connect();
  const outcomes = ['a', 'b', 'c'].map((text, i) => outcome(client.send({text}, i === 1 ? {room: 'dev'} : undefined)));
  assert.deepEqual(plain(client.pending()).map((p) => [p.room, p.data.text, p.state]),
                   [[null, 'a', 'queued'], ['dev', 'b', 'queued'], [null, 'c', 'queued']]);
  await flush();
  const t = transports.last();
  t.open();
  assert.deepEqual(t.frames().map((f) => f.t), ['auth'], 'nothing before the welcome');
  t.welcome();
  const sends = t.frames('send');
  assert.deepEqual(sends.map((f) => f.data.text), ['a', 'b', 'c']);
  assert.deepEqual(sends.map((f) => f.cid), plain(client.pending()).map((p) => p.cid));
  assert.deepEqual(plain(client.pending()).map((p) => p.state), ['sent', 'sent', 'sent']);
  sends.forEach((f) => t.ack(f, {msg: {id: f.cid}}));
  await flush();
  assert.deepEqual(outcomes.map((o) => [o.settled, o.ok]), [[1, true], [1, true], [1, true]]);
  assert.deepEqual(plain(client.pending()), []);
});

test('the outbox is bounded: queued plus sent-but-unanswered, past it outbox_full', async () => {
  const env = await connected({outbox: 3});
  const {client, transports} = env;
  const t = transports.last();
  client.send({n: 1});
  client.send({n: 2});
  t.drop();
  client.send({n: 3});  // queued while reconnecting
  assert.deepEqual(plain(client.pending()).map((p) => p.state), ['queued', 'queued', 'queued']);
  await assert.rejects(client.send({n: 4}), (e) => (assert.deepEqual(plain(e), {error: 'outbox_full'}), true));
  const t2 = await reconnect(env);
  await assert.rejects(client.send({n: 5}), (e) => e.error === 'outbox_full', 'sent, unanswered still count');
  t2.ack(t2.frames('send')[0], {msg: {}});
  await flush();
  client.send({n: 6});
  assert.deepEqual(plain(client.pending()).map((p) => p.data.n), [2, 3, 6]);
});

test('a send in flight at a drop is not rejected: it is re-sent with the same cid, and stored once', async () => {
  const env = await connected();
  const {client, transports, seen} = env;
  const first = transports.last();
  const a = outcome(client.send({text: 'a'}));
  const sentA = first.last('send');
  first.drop();
  await flush();
  assert.equal(a.settled, 0);
  assert.deepEqual(plain(client.pending()).map((p) => [p.cid, p.state]), [[sentA.cid, 'queued']]);
  const b = outcome(client.send({text: 'b'}));
  const t = await reconnect(env);
  const [againA, sentB] = t.frames('send');
  assert.equal(againA.cid, sentA.cid, 'the same cid');
  assert.notEqual(againA.ref, sentA.ref, 'a new ref');
  assert.deepEqual(againA.data, {text: 'a'});
  assert.equal(sentB.data.text, 'b');
  const original = {id: 'm1', room: 'main', seq: 1, user: 'ann', data: {text: 'a'}, ts: 1};
  t.ack(againA, {msg: original});  // the server knew the cid: the original message
  t.receive({t: 'ack', ref: sentA.ref, msg: {id: 'stale'}});  // an old ref: ignored
  t.ack(sentB, {msg: {id: 'm2'}});
  await flush();
  assert.deepEqual([a.settled, a.value], [1, original]);
  assert.deepEqual([b.settled, b.value], [1, {id: 'm2'}]);
  assert.deepEqual(seen('error'), []);
});

test('after a reconnect: auth (since), re-joins (since), re-sends, then queued sends, in that order', async () => {
  const env = await connected({}, {room: info('main', {epoch: 'e1', seq: 0})});
  const {client, transports} = env;
  let t = transports.last();
  t.receive({t: 'messages', list: [{id: 'x', room: 'main', seq: 3, user: 'bob', data: {}, ts: 0}]});
  client.join('dev', {key: 1});
  t.receive({t: 'messages', list: [{id: 'y', room: 'dev', seq: 7, user: 'bob', data: {}, ts: 0}]});
  t.ack(t.last('join'), info('dev', {epoch: 'd1', seq: 7}));
  client.send({n: 1}, {room: 'dev'});
  client.send({n: 2});
  t.drop();
  client.send({n: 3});
  client.send({n: 4}, {room: 'dev'});
  t = await reconnect(env, {room: info('main', {epoch: 'e1', seq: 3})});
  assert.deepEqual(plain(t.frames()).map((f) => [f.t, f.since || f.data]), [
    ['auth', {epoch: 'e1', seq: 3}],
    ['join', {epoch: 'd1', seq: 7}],
    ['send', {n: 1}], ['send', {n: 2}], ['send', {n: 3}], ['send', {n: 4}],
  ]);
  assert.deepEqual(t.last('join').data, {key: 1}, 'the original join data');
});

test('a send while connected waits behind queued ones, so the order holds', async () => {
  const env = await connected({}, {limits: {send: [1, 1]}});
  const {client, transports, clock} = env;
  const t = transports.last();
  t.drop();
  ['a', 'b'].forEach((text) => client.send({text}));
  const t2 = await reconnect(env, {limits: {send: [1, 1]}});
  assert.deepEqual(t2.frames('send').map((f) => f.data.text), ['a']);
  client.send({text: 'c'});  // connected, but 'b' waits for a token
  assert.deepEqual(plain(client.pending()).map((p) => p.state), ['sent', 'queued', 'queued']);
  await tick(clock, 1000);
  await tick(clock, 1000);
  assert.deepEqual(t2.frames('send').map((f) => f.data.text), ['a', 'b', 'c']);
});

test('the flush is paced by welcome.limits.send [per second, burst]; null means no pacing', async () => {
  const env = await connected({}, {limits: {send: [2, 3]}});
  const {client, transports, clock} = env;
  transports.last().drop();
  for (let i = 1; i <= 7; i++) client.send({n: i});
  const t = await reconnect(env, {limits: {send: [2, 3]}});
  const count = () => t.frames('send').length;
  assert.equal(count(), 3, 'the burst');
  await tick(clock, 499);
  assert.equal(count(), 3);
  await tick(clock, 1);
  assert.equal(count(), 4, 'then one every 500 ms');
  await tick(clock, 1500);
  assert.equal(count(), 7);
  assert.deepEqual(t.frames('send').map((f) => f.data.n), [1, 2, 3, 4, 5, 6, 7]);

  const free = await connected({}, {limits: null});
  free.transports.last().drop();
  for (let i = 1; i <= 50; i++) free.client.send({n: i});
  const t2 = await reconnect(free);
  assert.equal(t2.frames('send').length, 50);
});

test('FLOODED for a queued send puts it back at its place and holds the flush for retry ms', async () => {
  const env = await connected();
  const {client, transports, clock, seen} = env;
  transports.last().drop();
  const a = outcome(client.send({text: 'a'}));
  const b = outcome(client.send({text: 'b'}));
  let t = await reconnect(env);
  const [sa, sb] = t.frames('send');
  t.error(sa, 4010, {reason: 'slow down', retry: 300});
  assert.deepEqual(plain(client.pending()).map((p) => [p.data.text, p.state]), [['a', 'queued'], ['b', 'sent']]);
  client.send({text: 'c'});  // held: it waits behind 'a'
  assert.equal(t.frames('send').length, 2);
  await tick(clock, 299);
  assert.equal(t.frames('send').length, 2);
  await tick(clock, 1);
  const again = t.frames('send').slice(2);
  assert.deepEqual(again.map((f) => f.data.text), ['a', 'c']);
  assert.equal(again[0].cid, sa.cid);
  t.ack(again[0], {msg: {id: 'A'}});
  t.ack(sb, {msg: {id: 'B'}});
  await flush();
  assert.deepEqual([a.settled, a.ok, b.settled, b.ok], [1, true, 1, true]);
  assert.deepEqual(seen('error'), [], 'handled: no error event');
});

test('FLOODED for a re-send (in flight at a drop) also requeues it; without retry it waits 1 s', async () => {
  const env = await connected();
  const {client, transports, clock} = env;
  const a = outcome(client.send({text: 'a'}));
  const t = await reconnect(env);
  t.error(t.last('send'), 4010);
  await tick(clock, 999);
  assert.equal(t.frames('send').length, 1);
  await tick(clock, 1);
  assert.equal(t.frames('send').length, 2);
  assert.equal(a.settled, 0);
});

test('FLOODED for a send made while connected rejects it: the app says slow down', async () => {
  const {client, transports, seen} = await connected({}, {limits: {send: [1, 1]}});
  const t = transports.last();
  const a = outcome(client.send({text: 'a'}));
  const b = outcome(client.send({text: 'b'}));  // past the bucket, still sent at once
  assert.equal(t.frames('send').length, 2);
  t.error(t.frames('send')[1], 4010, {reason: 'flooded', retry: 900});
  await flush();
  assert.deepEqual([b.ok, b.value], [false, {error: 'protocol', code: 4010, reason: 'flooded'}]);
  assert.equal(a.settled, 0);
  assert.equal(seen('error').length, 1);
});

test('disconnect(), unauthorized and a fatal stop reject every waiting send with disconnected', async () => {
  for (const stop of [
    (c) => c.disconnect(),
    (c, t) => t.receive({t: 'unauthorized', meta: {}}),
    (c, t) => t.receive({t: 'error', code: 4006, reason: 'v', fatal: true}),
  ]) {
    const env = await connected();
    const {client, transports} = env;
    const sent = outcome(client.send({n: 1}));
    transports.last().drop();
    const queued = outcome(client.send({n: 2}));
    const t = await reconnect(env, false);
    t.open();
    const paced = outcome(client.send({n: 3}));
    stop(client, t);
    await flush();
    for (const o of [sent, queued, paced]) assert.deepEqual([o.settled, o.value], [1, {error: 'disconnected'}]);
    assert.deepEqual(plain(client.pending()), []);
    assert.ok(client.isDisconnected());
  }
});

test('every send promise settles exactly once, whatever answers arrive after', async () => {
  const env = await connected();
  const {client, transports, clock} = env;
  let t = transports.last();
  const all = [];
  for (let i = 0; i < 4; i++) all.push(outcome(client.send({n: i})));
  const first = t.frames('send');
  t.ack(first[0], {msg: {}});
  t.ack(first[0], {msg: {}});
  t.nack(first[1], {});
  t.ack(first[1], {msg: {}});
  t.drop();
  t = await reconnect(env);
  const again = t.frames('send');
  assert.deepEqual(again.map((f) => f.cid), [first[2].cid, first[3].cid]);
  t.error(again[0], 4016, {reason: 'not joined'});
  t.ack(again[0], {msg: {}});
  t.ack(again[1], {msg: {}});
  client.disconnect();
  await tick(clock, 100);
  assert.deepEqual(all.map((o) => [o.settled, o.ok]), [[1, true], [1, false], [1, false], [1, true]]);
});
