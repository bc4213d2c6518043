// The room list: join (or create) by name, leave, unread counts, and which rooms this
// user had open (kept in localStorage, so a reload joins them again).

import {$, el, why} from './dom.js';
import {app, roomOf} from './model.js';

let showRoom = () => {};

const storageKey = () => 'chitchat-demo:' + app.me;

/** Keep which rooms this user has open here, and the one shown. */
export function remember() {
  if (app.shown === null) return;  // still restoring what was kept: keep it
  const rooms = [...app.rooms.keys()].filter((name) => name !== app.home);
  try {
    localStorage.setItem(storageKey(), JSON.stringify({rooms, shown: app.shown}));
  } catch (err) {
    // Storage may be off (private mode): the rooms are simply not remembered.
  }
}

function saved() {
  try {
    const value = JSON.parse(localStorage.getItem(storageKey()) || '{}');
    return {rooms: Array.isArray(value.rooms) ? value.rooms : [], shown: value.shown};
  } catch (err) {
    return {rooms: []};
  }
}

function roomItem(room) {
  const count = room.joined ? room.unread(app.me) : 0;
  const shown = room.name === app.shown;
  return el('li', {data: {room: room.name}, class: shown ? 'shown' : null},
    el('button', {type: 'button', class: 'open', 'aria-current': shown ? 'true' : null}, room.name),
    count > 0 && el('span', {class: 'unread', title: count + ' unread'}, String(count)),
    !room.joined && el('span', {class: 'note'}, 'joining...'),
    room.name !== app.home && el('button', {type: 'button', class: 'leave',
                                           title: 'Leave ' + room.name}, '×'));
}

export function renderRooms() {
  const rooms = [...app.rooms.values()];
  $('rooms').replaceChildren(...rooms.map(roomItem));
  const unread = rooms.reduce((sum, room) => sum + (room.joined ? room.unread(app.me) : 0), 0);
  document.title = (unread ? '(' + unread + ') ' : '') + 'chitchat demo';
}

/** Join `name` (the server's join handler decides); show it once joined if `show`. */
export function joinRoom(name, show = true) {
  if (app.rooms.has(name)) {
    if (show && app.rooms.get(name).joined) showRoom(name);
    return;
  }
  const room = roomOf(name);
  remember();
  renderRooms();
  chitchat.join(name).then((info) => {
    if (app.rooms.get(name) !== room) return;  // left while joining
    room.joinedWith(info, app.me, true);
    if (show) showRoom(name);
    else renderRooms();
  }, (meta) => {
    if (app.rooms.get(name) === room) app.rooms.delete(name);
    remember();
    renderRooms();
    $('room-error').textContent = 'Could not join "' + name + '": ' + why(meta, 'refused.');
  });
}

export function leaveRoom(name) {
  chitchat.leave(name).catch(() => {});  // out at once either way
  app.rooms.delete(name);
  if (app.shown === name) showRoom(app.home);
  remember();
  renderRooms();
}

/** After the first connect: join the rooms this user had open here last time. */
export function restoreRooms() {
  const last = saved();
  last.rooms.forEach((name) => joinRoom(name, name === last.shown));
}

export function initRooms(show) {
  showRoom = show;
  $('rooms').addEventListener('click', (event) => {
    const item = event.target.closest('li');
    const button = event.target.closest('button');
    if (!item || !button) return;
    if (button.classList.contains('leave')) leaveRoom(item.dataset.room);
    else if (app.rooms.get(item.dataset.room).joined) showRoom(item.dataset.room);
  });
  $('join-room').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('room-name').value.trim();
    $('room-error').textContent = '';
    $('room-name').value = '';
    if (name) joinRoom(name);
  });
}
