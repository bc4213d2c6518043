// The ref-matched requests: history, markRead, edit, remove, react; their frames,
// answers, local checks and rejections.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const {flush, info, msg, connected, reconnect, outcome, plain} = require('./fakes.js');

async function inRooms() {
  const env = await connected({}, {room: info('main')});
  const t = env.transports.last();
  env.client.join('dev');
  t.ack(t.last('join'), info('dev'));
  env.events.length = 0;
  return env;
}

const disconnectedErr = {error: 'disconnected'};
const notConnected = {error: 'not_connected'};

test('history: the frame, the list it resolves with (oldest first), never a messages event', async () => {
  const {client, transports, seen} = await inRooms();
  const t = transports.last();
  const page = outcome(client.history('dev', {before: 40, limit: 2}));
  assert.deepEqual(plain(t.last('history')), {t: 'history', ref: t.last('history').ref, room: 'dev', before: 40, limit: 2});
  t.ack(t.last('history'), {room: 'dev', list: [msg('dev', 38), msg('dev', 39)]});
  const newest = outcome(client.history());  // the default room, the server's defaults
  assert.deepEqual(Object.keys(t.last('history')), ['t', 'ref', 'room']);
  assert.equal(t.last('history').room, 'main');
  t.ack(t.last('history'), {room: 'main', list: []});
  await flush();
  assert.deepEqual(page.value.map((m) => m.id), ['dev-38', 'dev-39']);
  assert.deepEqual(newest.value, []);
  assert.deepEqual(seen('messages'), []);
});

test('history refuses bad arguments locally with the code the server would use', async () => {
  const {client, transports} = await inRooms();
  const cases = [
    [['dev', {limit: 0}], 4007], [['dev', {limit: 101}], 4007], [['dev', {limit: 2.5}], 4007],
    [['dev', {before: -1}], 4007], [['dev', {before: '9'}], 4007], [['bad\u0007', {}], 4015],
  ];
  for (const [args, code] of cases) {
    await assert.rejects(client.history(...args), (e) => e.error === 'protocol' && e.code === code, JSON.stringify(args));
  }
  assert.deepEqual(transports.last().frames('history'), []);
  const ok = outcome(client.history('dev', {limit: 100, before: 0}));
  assert.equal(transports.last().frames('history').length, 1);
  assert.equal(ok.settled, 0);
});

test('edit, remove, react: frames and what they resolve with; live frames are the events', async () => {
  const {client, transports, seen} = await inRooms();
  const t = transports.last();
  const edited = outcome(client.edit('dev', 'dev-1', {text: 'new'}));
  assert.deepEqual(plain(t.last('edit')), {t: 'edit', ref: t.last('edit').ref, room: 'dev', id: 'dev-1', data: {text: 'new'}});
  const now = msg('dev', 1, {data: {text: 'new'}, edited: 77});
  t.ack(t.last('edit'), {msg: now});
  const removed = outcome(client.remove('dev', 'dev-2'));
  assert.deepEqual(plain(t.last('remove')), {t: 'remove', ref: t.last('remove').ref, room: 'dev', id: 'dev-2'});
  t.ack(t.last('remove'), {room: 'dev', id: 'dev-2'});
  const reacted = outcome(client.react('dev', 'dev-1', '👍🏽'));
  assert.deepEqual(plain(t.last('react')), {t: 'react', ref: t.last('react').ref, room: 'dev', id: 'dev-1', emoji: '👍🏽'});
  t.ack(t.last('react'), {room: 'dev', id: 'dev-1', reactions: {'👍🏽': ['ann']}});
  await flush();
  assert.deepEqual(edited.value, now);
  assert.deepEqual(removed.value, {room: 'dev', id: 'dev-2'});
  assert.deepEqual(reacted.value, {room: 'dev', id: 'dev-1', reactions: {'👍🏽': ['ann']}});
  assert.deepEqual(seen('edit'), [], 'the events come from the live frames, not the answers');
});

test('edit, remove, react reject with the nack meta or an error frame', async () => {
  const {client, transports, seen} = await inRooms();
  const t = transports.last();
  const edit = outcome(client.edit('dev', 'x', {a: 1}));
  t.nack(t.last('edit'), {error: 'forbidden'});
  const remove = outcome(client.remove('dev', 'x'));
  t.nack(t.last('remove'), {error: 'not_found'});
  const react = outcome(client.react('dev', 'x', '🎉'));
  t.error(t.last('react'), 4016, {reason: 'not joined'});
  await flush();
  assert.deepEqual(edit.value, {error: 'forbidden'});
  assert.deepEqual(remove.value, {error: 'not_found'});
  assert.deepEqual(react.value, {error: 'protocol', code: 4016, reason: 'not joined'});
  assert.equal(seen('error').length, 1);
});

test('react checks the emoji locally: 1..32 code points, no white space or control characters', async () => {
  const {client, transports} = await inRooms();
  for (const emoji of ['', ' ', '👍 ', 'a\tb', '\u0000', '\u0085', 'x'.repeat(33), 7, null]) {
    await assert.rejects(client.react('dev', 'm', emoji),
                         (e) => e.error === 'protocol' && e.code === 4007 && typeof e.reason === 'string', JSON.stringify(emoji));
  }
  assert.deepEqual(transports.last().frames('react'), []);
  for (const emoji of ['👍', '🏳️‍🌈', '+1', '😀'.repeat(32)]) client.react('dev', 'm', emoji).catch(() => {});
  assert.equal(transports.last().frames('react').length, 4);
});

test('edit refuses data that is not a plain object, and ids that are not strings', async () => {
  const {client} = await inRooms();
  await assert.rejects(client.edit('dev', 'm', [1]), (e) => e.error === 'invalid');
  const cyclic = {}; cyclic.me = cyclic;
  await assert.rejects(client.edit('dev', 'm', cyclic), (e) => e.error === 'invalid');
  await assert.rejects(client.edit('dev', 5, {}), (e) => e.code === 4007);
  await assert.rejects(client.remove('dev', ''), (e) => e.code === 4007);
});

test('history, edit, remove, react reject not_connected when not connected, disconnected on a drop', async () => {
  const env = await inRooms();
  const {client, transports} = env;
  const t = transports.last();
  const inFlight = [
    outcome(client.history('dev')), outcome(client.edit('dev', 'm', {})),
    outcome(client.remove('dev', 'm')), outcome(client.react('dev', 'm', '👍')),
  ];
  t.drop();
  await flush();
  for (const o of inFlight) assert.deepEqual([o.settled, o.value], [1, disconnectedErr]);
  const offline = [
    outcome(client.history('dev')), outcome(client.edit('dev', 'm', {})),
    outcome(client.remove('dev', 'm')), outcome(client.react('dev', 'm', '👍')),
  ];
  await flush();
  for (const o of offline) assert.deepEqual(o.value, notConnected);
  const t2 = await reconnect(env);
  assert.deepEqual(t2.frames().filter((f) => ['history', 'edit', 'remove', 'react'].includes(f.t)), [], 'none is re-sent');
});

test('markRead while connected: one frame, resolves with the position the server holds', async () => {
  const {client, transports} = await inRooms();
  const t = transports.last();
  const read = outcome(client.markRead('dev', 9));
  assert.deepEqual(plain(t.last('read')), {t: 'read', ref: t.last('read').ref, room: 'dev', seq: 9});
  t.ack(t.last('read'), {room: 'dev', seq: 7});
  await flush();
  assert.deepEqual(read.value, {room: 'dev', seq: 7});
  await assert.rejects(client.markRead('dev', -1), (e) => e.code === 4007);
  await assert.rejects(client.markRead('dev', 1.5), (e) => e.code === 4007);
  await assert.rejects(client.markRead('nowhere', 1), (e) => e.code === 4016);
  await assert.rejects(client.markRead('\u0001', 1), (e) => e.code === 4015);
});

test('markRead while reconnecting remembers the highest seq per room and sends it after the re-joins', async () => {
  const env = await inRooms();
  const {client, transports} = env;
  transports.last().drop();
  const a = outcome(client.markRead('dev', 5));
  const b = outcome(client.markRead('dev', 3));
  const c = outcome(client.markRead('main', 2));
  const t = await reconnect(env, {room: info('main')});
  assert.deepEqual(plain(t.frames()).slice(1).map((f) => [f.t, f.room, f.seq]),
                   [['join', 'dev', undefined], ['read', 'dev', 5], ['read', 'main', 2]]);
  t.ack(t.frames('read')[0], {room: 'dev', seq: 5});
  t.ack(t.frames('read')[1], {room: 'main', seq: 2});
  await flush();
  assert.deepEqual([a.value, b.value, c.value], [{room: 'dev', seq: 5}, {room: 'dev', seq: 5}, {room: 'main', seq: 2}]);
});

test('a markRead in flight at a drop is sent again; leaving the room or disconnect() rejects what waits', async () => {
  const env = await inRooms();
  const {client, transports} = env;
  const again = outcome(client.markRead('dev', 4));
  const t = await reconnect(env, {room: info('main')});
  assert.deepEqual(plain(t.frames('read')).map((f) => [f.room, f.seq]), [['dev', 4]]);
  t.ack(t.last('read'), {room: 'dev', seq: 4});
  t.drop();
  const gone = outcome(client.markRead('dev', 6));
  client.leave('dev');
  const stopped = outcome(client.markRead('main', 1));
  client.disconnect();
  await flush();
  assert.deepEqual(again.value, {room: 'dev', seq: 4});
  assert.deepEqual(gone.value, {error: 'protocol', code: 4016, reason: 'left the room'});
  assert.deepEqual(stopped.value, disconnectedErr);
  await assert.rejects(client.markRead('main', 1), (e) => e.error === 'not_connected');
});

test('an answer to a ref nobody waits for, and a second answer, are ignored', async () => {
  const {client, transports} = await inRooms();
  const t = transports.last();
  const h = outcome(client.history('dev'));
  const ref = t.last('history').ref;
  t.receive({t: 'ack', ref: 999, list: []});
  t.receive({t: 'ack', ref, room: 'dev', list: [msg('dev', 1)]});
  t.receive({t: 'nack', ref, meta: {}});
  await flush();
  assert.deepEqual([h.settled, h.ok], [1, true]);
  assert.ok(client.isConnected());
});
