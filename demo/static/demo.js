// The demo page: everything goes through the public chitchat client API (window.chitchat).
// Message content, names and room names are only ever shown as text.

import {$, why} from './dom.js';
import {app, roomOf} from './model.js';
import {initRooms, remember, renderRooms, restoreRooms} from './rooms.js';
import * as view from './messages.js';
import {initComposer} from './composer.js';

const isShown = (room) => room !== undefined && room.name === app.shown;

function setState() {
  const state = chitchat.state();
  $('state').textContent = state;
  $('state').className = 'state ' + state;
  $('state').setAttribute('data-state', state);
}

// The user has seen the shown room's newest message if the tab is visible.
function readShown() {
  const room = app.rooms.get(app.shown);
  const newest = room && room.newest();
  if (!room || !room.joined || document.visibilityState !== 'visible') return;
  room.extra = 0;
  if (newest && newest.seq > room.lastRead) {
    room.lastRead = newest.seq;
    chitchat.markRead(room.name, newest.seq).catch(() => {});  // left meanwhile
  }
  renderRooms();
}

function show(name) {
  app.shown = name;
  app.editing = app.deleting = null;
  view.renderShown();
  remember();
  renderRooms();
  readShown();
}

function received(name, list) {
  if (name === null) return;  // pushes: the demo server sends none
  const room = app.rooms.get(name) || Object.assign(roomOf(name), {joined: true});  // chat.add
  const fresh = list.filter((msg) => room.put(msg));
  if (isShown(room) && fresh.length) {
    view.addMessages(fresh);
    readShown();
  }
  renderRooms();
}

function onConnect(info) {
  setState();
  view.renderPending();
  if (app.me !== null) return;  // a reconnect: the client resumed every room itself
  app.me = info.user;
  $('me').textContent = info.user;
  $('login').hidden = true;
  $('app').hidden = false;
  chitchat.rooms().forEach((name) => {  // the server's default room
    const room = roomOf(name);
    app.home = app.home || name;
    chitchat.join(name).then((known) => {
      room.joinedWith(known, app.me, false);
      if (isShown(room)) view.renderShown();
      readShown();
    });
  });
  restoreRooms();  // before anything is saved over what was kept
  show(app.home);
  $('text').focus();
}

function inRoom(name, fn) {
  const room = app.rooms.get(name);
  if (room) fn(room);
}

chitchat.on('connect', onConnect);
chitchat.on('disconnect', () => { setState(); view.renderPending(); });
chitchat.on('reconnect', () => { setState(); view.renderPending(); });
chitchat.on('unauthorized', (meta) => {
  setState();
  const name = $('name').value.trim();
  $('login-error').textContent = (name ? '"' + name + '": ' : '') + why(meta, 'Not allowed in.');
});
chitchat.on('messages', (list) => received(list[0].room, list));
chitchat.on('presence', (p) => inRoom(p.room, (room) => {
  room.members = p.members;
  if (isShown(room)) view.renderMembers();
}));
chitchat.on('typing', (t) => inRoom(t.room, (room) => {
  room.typing = t.users;
  if (isShown(room)) view.renderTyping();
}));
chitchat.on('read', (r) => inRoom(r.room, (room) => {
  room.read(r.user, r.seq, app.me);
  if (isShown(room)) view.renderSeen();
  renderRooms();
}));
chitchat.on('edit', (msg) => inRoom(msg.room, (room) => {
  if (!room.find(msg.id)) return;  // older than what is loaded
  room.put(msg);
  if (isShown(room)) view.place(msg);
}));
chitchat.on('reactions', (r) => inRoom(r.room, (room) => {
  const msg = room.find(r.id);
  if (!msg) return;
  room.put(Object.assign({}, msg, {reactions: r.reactions}));
  if (isShown(room)) view.place(room.find(r.id));
}));
chitchat.on('remove', (r) => inRoom(r.room, (room) => {
  room.drop(r.id);
  if (isShown(room)) view.removeItem(r.id);
  renderRooms();
}));
chitchat.on('reset', (r) => inRoom(r.room, (room) => {
  // The server could not recover this room (e.g. an in-memory demo restarted): start over.
  room.clear();
  room.lastRead = 0;
  room.reads = {};
  if (isShown(room)) view.renderShown();
  renderRooms();
}));
chitchat.on('removed', (r) => inRoom(r.room, (room) => {
  app.rooms.delete(room.name);
  remember();
  $('room-error').textContent = 'You are no longer in "' + room.name + '".';
  if (isShown(room)) show(app.home);
  renderRooms();
}));

document.addEventListener('visibilitychange', readShown);
initRooms(show);
view.initMessages();
initComposer(received);

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('name').value.trim();
  $('login-error').textContent = '';
  chitchat.connect('/chat', {auth: {name}});
  setState();
});
