// The shown room: its messages (with edit, delete and reactions), "seen by", the
// sends still pending, who is typing, its members, and older messages on scroll-up.

import {$, el, nameList, textOf, why} from './dom.js';
import {app} from './model.js';

const EMOJI = ['👍', '❤️', '😂', '🎉', '😮'];
const PAGE = 20;  // older messages fetched per scroll to the top

const shownRoom = () => app.rooms.get(app.shown) || null;
const itemOf = (id) => $('messages').querySelector('li.msg[data-id="' + CSS.escape(id) + '"]');
const clock = (ms) => new Date(ms).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});

function reactionsOf(msg) {
  const chips = Object.entries(msg.reactions || {}).filter(([, users]) => users.length)
    .map(([emoji, users]) => el('button', {
      type: 'button', class: 'reaction' + (users.includes(app.me) ? ' mine' : ''),
      data: {emoji}, title: users.join(', ')
    }, emoji + ' ' + users.length));
  return chips.length ? el('span', {class: 'reactions'}, ...chips) : null;
}

function actionsOf(msg) {
  const mine = msg.user === app.me;
  return el('span', {class: 'actions'},
    ...EMOJI.map((emoji) => el('button', {type: 'button', class: 'react', data: {emoji},
                                          title: 'React with ' + emoji}, emoji)),
    mine && el('button', {type: 'button', class: 'edit'}, 'Edit'),
    mine && el('button', {type: 'button', class: 'delete'}, 'Delete'));
}

function messageItem(msg) {
  const text = textOf(msg.data);
  const body = app.editing === msg.id
    ? el('form', {class: 'editor'},
      el('input', {class: 'edit-text', value: text, maxlength: 500, 'aria-label': 'Edit message'}),
      el('button', {type: 'submit', class: 'save'}, 'Save'),
      el('button', {type: 'button', class: 'cancel'}, 'Cancel'))
    : el('span', {class: 'text'}, text);
  const busy = app.editing === msg.id || app.deleting === msg.id;
  return el('li', {class: 'msg' + (msg.user === app.me ? ' mine' : '') + (busy ? ' busy' : ''),
                   data: {id: msg.id, seq: msg.seq, user: msg.user === null ? '' : msg.user}},
    actionsOf(msg),
    el('span', {class: 'who'}, msg.user === null ? 'server' : msg.user),
    body,
    msg.edited ? el('span', {class: 'edited', title: 'edited at ' + clock(msg.edited)}, '(edited)') : null,
    el('time', {class: 'when', datetime: new Date(msg.ts).toISOString()}, clock(msg.ts)),
    app.deleting === msg.id && el('span', {class: 'confirm'}, 'Delete this message? ',
      el('button', {type: 'button', class: 'confirm-yes'}, 'Delete'),
      el('button', {type: 'button', class: 'confirm-no'}, 'Keep')),
    reactionsOf(msg));
}

// Changes to the list keep the view where the reader has it: at the bottom if it was,
// else at the same distance from the bottom (so older messages appear above).
function keepingScroll(change) {
  const box = $('scroll');
  const fromBottom = box.scrollHeight - box.scrollTop;
  const atBottom = fromBottom - box.clientHeight < 40;
  change();
  box.scrollTop = atBottom ? box.scrollHeight : box.scrollHeight - fromBottom;
}

/** Show `msg` of the shown room (new, or changed) at its place in seq order. */
export function place(msg) {
  const room = shownRoom();
  if (!room || !room.find(msg.id)) return;
  const item = messageItem(msg);
  const old = itemOf(msg.id);
  const draft = old && old.querySelector('.edit-text');
  if (old) {
    old.replaceWith(item);
  } else {
    // Before the first later message on screen (older ones arrive oldest first).
    let next = null;
    for (let i = room.messages.indexOf(room.find(msg.id)) + 1; !next && i < room.messages.length; i++) {
      next = itemOf(room.messages[i].id);
    }
    $('messages').insertBefore(item, next);
  }
  const input = item.querySelector('.edit-text');
  if (input && draft) input.value = draft.value;
  if (input && (!draft || document.activeElement === draft)) input.focus();
}

export function addMessages(list) {
  keepingScroll(() => list.forEach(place));
  renderSeen();
}

export function removeItem(id) {
  const item = itemOf(id);
  if (item) item.remove();
  renderSeen();
}

export function renderSeen() {
  const room = shownRoom();
  const seen = room ? room.seenBy(app.me) : [];
  $('seen').hidden = !seen.length;
  $('seen').textContent = seen.length ? 'seen by ' + seen.join(', ') : '';
}

/** The sends of the shown room still waiting for the server's answer. */
export function renderPending() {
  const waiting = chitchat.pending().filter((p) => (p.room === null ? app.home : p.room) === app.shown);
  const status = (p) => p.state === 'sent' ? 'sending...' : 'waiting for the connection...';
  keepingScroll(() => $('pending').replaceChildren(...waiting.map((p) =>
    el('li', {class: 'pending', data: {cid: p.cid, state: p.state}},
      el('span', {class: 'who'}, app.me),
      el('span', {class: 'text'}, textOf(p.data)),
      el('span', {class: 'status'}, status(p))))));
}

export function renderTyping() {
  const users = (shownRoom() || {typing: []}).typing;
  $('typing').textContent = users.length
    ? nameList(users) + (users.length === 1 ? ' is' : ' are') + ' typing...' : '';
}

export function renderMembers() {
  const members = [...(shownRoom() || {members: []}).members].sort();
  $('members').replaceChildren(...members.map((name) =>
    el('li', {class: name === app.me ? 'me' : null}, name)));
}

/** Everything of the shown room, from scratch (after switching rooms or a reset). */
export function renderShown() {
  const room = shownRoom();
  $('room-title').textContent = room ? room.name : '';
  $('messages').replaceChildren(...(room ? room.messages.map(messageItem) : []));
  $('older').hidden = !(room && room.loadingOlder);
  renderSeen();
  renderPending();
  renderTyping();
  renderMembers();
  $('scroll').scrollTop = $('scroll').scrollHeight;
  fill();
}

// Older messages, from history(), when the reader scrolls to the top.
function loadOlder(room) {
  const oldest = room.messages[0];
  if (room.loadingOlder || !room.more || !room.joined || !oldest) return;
  room.loadingOlder = true;
  $('older').hidden = false;
  chitchat.history(room.name, {before: oldest.seq, limit: PAGE}).then((list) => {
    room.loadingOlder = false;
    room.more = list.length === PAGE;
    list.forEach((msg) => room.put(msg));
    if (room !== shownRoom()) return;
    $('older').hidden = true;
    keepingScroll(() => list.forEach(place));
    fill();
  }, () => {
    room.loadingOlder = false;  // not connected: the next scroll tries again
    $('older').hidden = true;
  });
}

// A room whose messages do not fill the view cannot be scrolled: load more at once.
function fill() {
  const box = $('scroll');
  const room = shownRoom();
  if (room && box.scrollHeight <= box.clientHeight) loadOlder(room);
}

function act(promise, done) {
  $('send-error').textContent = '';
  promise.then(done, (meta) => { $('send-error').textContent = why(meta, 'Refused.'); });
}

// What each button of a message does to the page's state (then the message is redrawn).
const BUTTONS = {
  edit: (msg) => { [app.editing, app.deleting] = [msg.id, null]; },
  cancel: () => { app.editing = null; },
  delete: (msg) => { [app.deleting, app.editing] = [msg.id, null]; },
  'confirm-no': () => { app.deleting = null; },
  'confirm-yes': (msg, room) => act(chitchat.remove(room.name, msg.id), () => {
    app.deleting = null;
    room.drop(msg.id);
    removeItem(msg.id);
  })
};

function onClick(event) {
  const button = event.target.closest('button');
  const item = event.target.closest('li.msg');
  const room = shownRoom();
  const msg = item && room && room.find(item.dataset.id);
  if (!button || !msg) return;
  if (button.dataset.emoji) {
    act(chitchat.react(room.name, msg.id, button.dataset.emoji), () => {});
    return;
  }
  const action = Object.keys(BUTTONS).find((name) => button.classList.contains(name));
  if (!action) return;  // Save: the editor's submit does it
  BUTTONS[action](msg, room);
  place(msg);
}

function onEdit(event) {
  event.preventDefault();
  const room = shownRoom();
  const item = event.target.closest('li.msg');
  if (!room || !item) return;
  const id = item.dataset.id;
  act(chitchat.edit(room.name, id, {text: item.querySelector('.edit-text').value}), (msg) => {
    app.editing = null;
    if (room.find(id)) room.put(msg);
    if (room === shownRoom()) place(msg);
  });
}

export function initMessages() {
  $('messages').addEventListener('click', onClick);
  $('messages').addEventListener('submit', onEdit);
  $('messages').addEventListener('keydown', (event) => {
    const item = event.target.closest('li.msg');
    const msg = item && shownRoom() && shownRoom().find(item.dataset.id);
    if (event.key === 'Escape' && msg && app.editing === msg.id) {
      app.editing = null;
      place(msg);
    }
  });
  let lastTop = 0;
  $('scroll').addEventListener('scroll', () => {
    const top = $('scroll').scrollTop;
    const room = shownRoom();
    if (room && top < 40 && top < lastTop) loadOlder(room);  // the reader went up
    lastTop = top;
  });
}
