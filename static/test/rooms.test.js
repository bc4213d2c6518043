// Rooms: join/leave, the default room, positions and recovery (since, reset,
// duplicates), presence, typing, and the server's joined/removed frames.
'use strict';

const assert = require('node:assert/strict');
const test = require('node:test');
const {flush, tick, info, msg, setup, connected, reconnect, outcome, plain} = require('./fakes.js');

const ids = (events) => plain(events).filter((e) => e[0] === 'messages').map((e) => e[1].map((m) => m.id));

test('join sends data, delivers the history before it resolves on the ack, then emits presence', async () => {
  const {client, transports, events} = await connected();
  const t = transports.last();
  const order = [];
  client.on('messages', () => order.push('messages'));
  client.on('presence', () => order.push('presence'));
  const joined = client.join('dev', {key: 'k'});
  joined.then(() => order.push('resolved'));
  const frame = t.last('join');
  assert.deepEqual(Object.keys(frame), ['t', 'ref', 'room', 'data']);
  assert.deepEqual([frame.room, frame.data], ['dev', {key: 'k'}]);
  assert.deepEqual(plain(client.rooms()), [], 'not in it until the ack');
  t.receive({t: 'messages', list: [msg('dev', 1), msg('dev', 2)]});
  const room = info('dev', {meta: {topic: 'x'}, epoch: 'd1', seq: 2, members: ['ann', 'bob'], unread: 1, lastRead: 1, reads: {bob: 2}});
  t.ack(frame, room);
  await flush();
  assert.deepEqual(order, ['messages', 'presence', 'resolved']);
  assert.deepEqual(plain(await joined), room);
  assert.deepEqual(ids(events), [['dev-1', 'dev-2']]);
  assert.deepEqual(plain(events.filter((e) => e[0] === 'presence')),
                   [['presence', {room: 'dev', members: ['ann', 'bob'], joined: [], left: []}]]);
  assert.deepEqual(plain(client.rooms()), ['dev']);
  assert.deepEqual(plain(client.members('dev')), ['ann', 'bob']);
  assert.deepEqual(plain(await client.join('dev')), room, 'joining again: what is known');
  assert.equal(t.frames('join').length, 1);
});

test('join rejects with the nack meta, an error frame, a bad name (4015), or not_connected', async () => {
  const {client, transports} = await connected();
  const t = transports.last();
  const refused = outcome(client.join('secret'));
  t.nack(t.last('join'), {reason: 'members only'});
  const broken = outcome(client.join('odd'));
  t.error(t.last('join'), 4007, {reason: 'data'});
  await flush();
  assert.deepEqual(refused.value, {reason: 'members only'});
  assert.deepEqual(broken.value, {error: 'protocol', code: 4007, reason: 'data'});
  await assert.rejects(client.join('a\nb'), (e) => e.code === 4015 && e.error === 'protocol');
  await assert.rejects(client.join(''), (e) => e.code === 4015);
  assert.equal(t.frames('join').length, 2, 'bad names never reach the server');
  assert.deepEqual(plain(client.rooms()), []);
  client.disconnect();
  await assert.rejects(client.join('dev'), (e) => e.error === 'not_connected');
});

test('a join made while reconnecting waits and goes out after the welcome', async () => {
  const env = await connected();
  const {client, transports} = env;
  transports.last().drop();
  const joined = outcome(client.join('dev', {k: 1}));
  const same = outcome(client.join('dev'));
  const t = await reconnect(env);
  assert.deepEqual(plain(t.frames('join')).map((f) => [f.room, f.data, f.since]), [['dev', {k: 1}, undefined]]);
  t.ack(t.last('join'), info('dev'));
  await flush();
  assert.deepEqual([joined.settled, joined.ok, same.settled, same.ok], [1, true, 1, true]);
});

test('a join in flight at a drop is sent again after the reconnect and resolves once', async () => {
  const env = await connected();
  const {client, transports} = env;
  const joined = outcome(client.join('dev'));
  const t = await reconnect(env);
  assert.equal(joined.settled, 0);
  t.ack(t.last('join'), info('dev'));
  await flush();
  assert.deepEqual([joined.settled, joined.ok], [1, true]);
});

test('the default room: recorded from welcome.room, its history delivered, presence after connect', async () => {
  const env = setup();
  const {client, transports, events} = env;
  client.connect();
  await flush();
  const t = transports.last();
  t.welcome({room: info('main', {epoch: 'e1', seq: 41, members: ['ann', 'cy']})});
  // The history follows the room info (seq 41): it is new, not a duplicate.
  t.receive({t: 'messages', list: [msg('main', 40), msg('main', 41)]});
  assert.deepEqual(plain(events).map((e) => e[0]), ['connect', 'presence', 'messages']);
  assert.deepEqual(plain(events[1][1]), {room: 'main', members: ['ann', 'cy'], joined: [], left: []});
  assert.deepEqual(ids(events), [['main-40', 'main-41']]);
  assert.deepEqual(plain(client.rooms()), ['main']);
  const sent = outcome(client.send({text: 'hi'}));
  assert.equal(t.last('send').room, undefined, 'a send without room goes to the default room');
  assert.equal(sent.settled, 0);
});

test('a join of the default room made before the welcome resolves with it, and is not sent', async () => {
  const {client, transports} = setup();
  client.connect();
  const joined = outcome(client.join('main'));
  await flush();
  transports.last().welcome({room: info('main', {seq: 5})});
  await flush();
  assert.deepEqual([joined.settled, joined.ok, joined.value.room], [1, true, 'main']);
  assert.deepEqual(transports.last().frames('join'), []);
});

test('after a reconnect the default room is resumed through auth since, other rooms by join since', async () => {
  const env = await connected({}, {room: info('main', {epoch: 'e1', seq: 2})});
  const {client, transports, events} = env;
  let t = transports.last();
  t.receive({t: 'messages', list: [msg('main', 1), msg('main', 2)]});
  client.join('dev', {pw: 1});
  t.receive({t: 'messages', list: [msg('dev', 5)]});
  t.ack(t.last('join'), info('dev', {epoch: 'd1', seq: 6}));
  t.receive({t: 'messages', list: [msg('main', 3)]});
  events.length = 0;
  t = await reconnect(env, false);
  t.open();
  assert.deepEqual(plain(t.frames()), [{t: 'auth', v: 1, data: null, since: {epoch: 'e1', seq: 3}}]);
  t.receive({t: 'welcome', user: 'ann', meta: null, hb: 1000, room: info('main', {epoch: 'e1', seq: 4}), limits: null});
  assert.deepEqual(plain(t.last('join')), {t: 'join', ref: t.last('join').ref, room: 'dev', data: {pw: 1}, since: {epoch: 'd1', seq: 6}});
  t.receive({t: 'messages', list: [msg('main', 3), msg('main', 4)]});  // main-3 again: dropped
  t.receive({t: 'messages', list: [msg('dev', 6), msg('dev', 7)]});    // dev-6 is within the ack's seq 6
  t.ack(t.last('join'), info('dev', {epoch: 'd1', seq: 7, members: ['ann', 'dan']}));
  assert.deepEqual(ids(events), [['main-4'], ['dev-7']]);
  assert.deepEqual(plain(events.filter((e) => e[0] === 'presence').map((e) => e[1].room)), ['main', 'dev'],
                   'a full member list again after each re-join');
  assert.deepEqual(plain(client.members('dev')), ['ann', 'dan']);
});

test('reset: the reset event comes before the messages that follow, and the position restarts', async () => {
  const env = await connected({}, {room: info('main', {epoch: 'e1', seq: 9})});
  const {transports, events} = env;
  let t = transports.last();
  t.receive({t: 'messages', list: [msg('main', 8), msg('main', 9)]});
  events.length = 0;
  t = await reconnect(env, {room: info('main', {epoch: 'e2', seq: 2})});
  t.receive({t: 'reset', room: 'main', epoch: 'e2'});
  t.receive({t: 'messages', list: [msg('main', 1), msg('main', 2)]});
  assert.deepEqual(plain(events).filter((e) => e[0] === 'reset' || e[0] === 'messages').map((e) => e[0]),
                   ['reset', 'messages']);
  assert.deepEqual(plain(events.find((e) => e[0] === 'reset')[1]), {room: 'main'});
  assert.deepEqual(ids(events), [['main-1', 'main-2']]);
  t = await reconnect(env, false);
  t.open();
  assert.deepEqual(t.frames('auth')[0].since, {epoch: 'e2', seq: 2});
});

test('reset during a re-join: the history after it is delivered although its seqs are low', async () => {
  const env = await connected();
  const {client, transports, events} = env;
  let t = transports.last();
  client.join('dev');
  t.receive({t: 'messages', list: [msg('dev', 7)]});
  t.ack(t.last('join'), info('dev', {epoch: 'd1', seq: 7}));
  events.length = 0;
  t = await reconnect(env);
  assert.deepEqual(t.last('join').since, {epoch: 'd1', seq: 7});
  t.receive({t: 'reset', room: 'dev', epoch: 'd2'});
  t.receive({t: 'messages', list: [msg('dev', 1), msg('dev', 2)]});
  t.ack(t.last('join'), info('dev', {epoch: 'd2', seq: 2}));
  assert.deepEqual(plain(events).map((e) => e[0]), ['disconnect', 'reconnect', 'connect', 'reset', 'messages', 'presence']);
  assert.deepEqual(ids(events), [['dev-1', 'dev-2']]);
});

test('entries at or below the known position are duplicates and are dropped (messages, edit, remove, reactions)', async () => {
  const {client, transports, events} = await connected({}, {room: info('main', {seq: 0})});
  const t = transports.last();
  t.receive({t: 'messages', list: [msg('main', 1), msg('main', 2)]});
  t.receive({t: 'messages', list: [msg('main', 2), msg('main', 3)]});
  t.receive({t: 'edit', room: 'main', seq: 3, msg: msg('main', 1)});
  t.receive({t: 'edit', room: 'main', seq: 4, msg: msg('main', 1, {data: {n: 'edited'}, edited: 9})});
  t.receive({t: 'remove', room: 'main', seq: 4, id: 'main-2'});
  t.receive({t: 'remove', room: 'main', seq: 5, id: 'main-2'});
  t.receive({t: 'reactions', room: 'main', seq: 5, id: 'main-1', reactions: {}});
  t.receive({t: 'reactions', room: 'main', seq: 6, id: 'main-1', reactions: {'👍': ['bob']}});
  t.receive({t: 'messages', list: [msg('main', 6), msg('main', 7)]});
  t.receive({t: 'messages', list: [msg('elsewhere', 1)]});  // not a room of ours
  assert.deepEqual(ids(events), [['main-1', 'main-2'], ['main-3'], ['main-7']]);
  assert.deepEqual(plain(events.filter((e) => ['edit', 'remove', 'reactions'].includes(e[0]))), [
    ['edit', msg('main', 1, {data: {n: 'edited'}, edited: 9})],
    ['remove', {room: 'main', id: 'main-2'}],
    ['reactions', {room: 'main', id: 'main-1', reactions: {'👍': ['bob']}}],
  ]);
  assert.equal(client.isConnected(), true);
});

test('leave stops delivering the room at once; the default room left means auth default: false', async () => {
  const env = await connected({}, {room: info('main')});
  const {client, transports, events} = env;
  let t = transports.last();
  const left = outcome(client.leave());
  assert.deepEqual(plain(t.last('leave')), {t: 'leave', ref: t.last('leave').ref, room: 'main'});
  t.receive({t: 'messages', list: [msg('main', 1)]});
  assert.deepEqual(ids(events), []);
  assert.deepEqual(plain(client.rooms()), []);
  t.ack(t.last('leave'), {room: 'main'});
  await flush();
  assert.deepEqual(left.value, {room: 'main'});
  t = await reconnect(env, false);
  t.open();
  assert.deepEqual(t.frames('auth')[0].default, false);
  await assert.rejects(client.leave('nowhere'), (e) => e.code === 4016);
});

test('leave while reconnecting resolves at once and the room is not joined again', async () => {
  const env = await connected();
  const {client, transports} = env;
  let t = transports.last();
  client.join('dev');
  t.ack(t.last('join'), info('dev'));
  t.drop();
  assert.deepEqual(plain(await client.leave('dev')), {room: 'dev'});
  t = await reconnect(env);
  assert.deepEqual(t.frames('join'), []);
  client.disconnect();
  await assert.rejects(client.leave('dev'), (e) => e.error === 'not_connected');
});

test('presence frames: joined and left computed against the known members; no event when nothing changed', async () => {
  const {client, transports, events} = await connected({}, {room: info('main', {members: ['ann', 'bob']})});
  const t = transports.last();
  t.receive({t: 'presence', room: 'main', joined: ['cy', 'bob'], left: []});
  t.receive({t: 'presence', room: 'main', joined: ['cy'], left: ['zed']});  // nothing new
  t.receive({t: 'presence', room: 'main', joined: [], left: ['bob']});
  t.receive({t: 'presence', room: 'main', joined: ['dan'], left: ['dan']});  // came and went
  t.receive({t: 'presence', room: 'other', joined: ['x'], left: []});
  assert.deepEqual(plain(events.filter((e) => e[0] === 'presence').map((e) => e[1])), [
    {room: 'main', members: ['ann', 'bob', 'cy'], joined: ['cy'], left: []},
    {room: 'main', members: ['ann', 'cy'], joined: [], left: ['bob']},
  ]);
  assert.deepEqual(plain(client.members()), ['ann', 'cy']);
  assert.deepEqual(plain(client.members('nowhere')), []);
});

test('no presence events when the server keeps no presence (members null)', async () => {
  const {client, transports, seen} = setup();
  client.connect();
  await flush();
  transports.last().welcome({room: info('main', {members: null})});
  transports.last().receive({t: 'presence', room: 'main', joined: ['bob'], left: []});
  assert.deepEqual(seen('presence'), []);
  assert.deepEqual(plain(client.members()), []);
});

test('typing(room) writes at most one frame per room every 2 s; no-op offline or outside the room', async () => {
  const env = await connected({}, {room: info('main')});
  const {client, transports, clock} = env;
  const t = transports.last();
  client.typing('main');
  client.typing();  // the default room
  await tick(clock, 1999);
  client.typing('main');
  client.typing('elsewhere');
  assert.deepEqual(plain(t.frames('typing')), [{t: 'typing', room: 'main'}]);
  await tick(clock, 1);
  client.typing('main');
  assert.equal(t.frames('typing').length, 2);
  await tick(clock, 5000);
  t.drop();
  client.typing('main');
  assert.equal(t.frames('typing').length, 2);
});

test('typing frames: the own user is left out, events only when the list changes, cleared on a drop', async () => {
  const {transports, seen} = await connected({}, {room: info('main')});
  const t = transports.last();
  t.receive({t: 'typing', room: 'main', users: ['ann', 'bob']});
  t.receive({t: 'typing', room: 'main', users: ['bob']});  // only ann (us) stopped
  t.receive({t: 'typing', room: 'main', users: ['ann']});
  t.receive({t: 'typing', room: 'main', users: []});
  t.receive({t: 'typing', room: 'main', users: ['cy']});
  t.drop();
  assert.deepEqual(seen('typing'), [
    {room: 'main', users: ['bob']}, {room: 'main', users: []}, {room: 'main', users: ['cy']}, {room: 'main', users: []},
  ]);
});

test('removed: the room is dropped, the event emitted, and it is not joined again by itself', async () => {
  const env = await connected({}, {room: info('main')});
  const {client, transports, events, seen} = env;
  let t = transports.last();
  client.join('dev');
  t.ack(t.last('join'), info('dev'));
  t.receive({t: 'removed', room: 'dev'});
  t.receive({t: 'messages', list: [msg('dev', 1)]});
  assert.deepEqual(seen('removed'), [{room: 'dev'}]);
  assert.deepEqual(ids(events), []);
  assert.deepEqual(plain(client.rooms()), ['main']);
  t.receive({t: 'removed', room: 'main'});
  t = await reconnect(env, false);
  t.open();
  assert.deepEqual(t.frames('auth')[0].default, false, 'out of the default room too');
  t.receive({t: 'welcome', user: 'ann', meta: null, hb: 1000, room: null, limits: null});
  assert.deepEqual(t.frames('join'), []);
});

test('joined: the server put us in a room: recorded, presence, its history, re-joined after a reconnect', async () => {
  const env = await connected();
  const {client, transports, events} = env;
  let t = transports.last();
  t.receive(Object.assign({t: 'joined'}, info('ops', {epoch: 'o1', seq: 12, members: ['ann', 'eve']})));
  t.receive({t: 'messages', list: [msg('ops', 11), msg('ops', 12)]});
  assert.deepEqual(plain(events).map((e) => e[0]), ['presence', 'messages']);
  assert.deepEqual(ids(events), [['ops-11', 'ops-12']]);
  assert.deepEqual(plain(client.rooms()), ['ops']);
  t = await reconnect(env);
  assert.deepEqual(plain(t.frames('join')).map((f) => [f.room, f.data, f.since]), [['ops', undefined, {epoch: 'o1', seq: 12}]]);
});

test('a refused re-join drops the room and is announced as removed, with the meta', async () => {
  const env = await connected();
  const {client, transports, seen} = env;
  let t = transports.last();
  client.join('dev');
  t.ack(t.last('join'), info('dev'));
  t = await reconnect(env);
  t.nack(t.last('join'), {reason: 'banned'});
  assert.deepEqual(seen('removed'), [{room: 'dev', meta: {reason: 'banned'}}]);
  assert.deepEqual(plain(client.rooms()), []);
});

test('read frames: one read event per entry of reads', async () => {
  const {transports, seen} = await connected({}, {room: info('main')});
  transports.last().receive({t: 'read', room: 'main', reads: {bob: 4, cy: 2}});
  transports.last().receive({t: 'read', room: 'other', reads: {bob: 4}});
  assert.deepEqual(seen('read'), [{room: 'main', user: 'bob', seq: 4}, {room: 'main', user: 'cy', seq: 2}]);
});

test('disconnect() forgets the rooms and rejects joins that wait; a new connect starts afresh', async () => {
  const env = await connected({}, {room: info('main', {seq: 3})});
  const {client, transports} = env;
  transports.last().receive({t: 'messages', list: [msg('main', 3)]});
  transports.last().drop();
  const waiting = outcome(client.join('dev'));
  client.disconnect();
  await flush();
  assert.deepEqual(waiting.value, {error: 'disconnected'});
  assert.deepEqual(plain(client.rooms()), []);
  client.connect();
  await flush();
  transports.last().open();
  assert.deepEqual(plain(transports.last().frames()), [{t: 'auth', v: 1, data: null}]);
});
