// Records everything a chitchat client does, for the browser tests to read, and
// wraps the client's promises as plain {ok, value} / {ok: false, meta} objects (what
// page.evaluate can return).
//
//   rec.events    the connection's events (connect, disconnect, reconnect,
//                 unauthorized, error), in order: [name, arg]
//   rec.states    chitchat.state() after each of those events
//   rec.room      the room events (presence, typing, removed, reset, read, edit,
//                 remove, reactions), in order: [name, arg]; apart from rec.events so
//                 that tests of the connection see only its events
//   rec.messages  every delivered message, in order; rec.received[id]: when (ms)
//   rec.view      room -> the messages as a person would see them now: a message is
//                 added once, edits replace it, removes delete it, reactions update
//                 it, and a reset clears the room (pushes are under the key '')
//   rec.eventAt, rec.roomAt  when (Date.now()) each entry of rec.events, rec.room came
//   rec.sends     text -> what became of a sendLater(room, text): {settled: how many
//                 times its promise settled, ok, value | meta}
(function () {
'use strict';

window.rec = {events: [], room: [], messages: [], states: [], received: {}, view: {},
              eventAt: [], roomAt: [], sends: {}};

var CONNECTION_EVENTS = ['connect', 'disconnect', 'reconnect', 'unauthorized', 'error'];
var ROOM_EVENTS = ['presence', 'typing', 'removed', 'reset', 'read', 'edit', 'remove', 'reactions'];

function plainCopy(value) {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

function viewOf(room) {
  var key = room == null ? '' : room;
  if (!rec.view[key]) rec.view[key] = [];
  return rec.view[key];
}

function findIn(room, id) {
  var list = viewOf(room);
  for (var i = 0; i < list.length; i++) if (list[i].id === id) return i;
  return -1;
}

// How each event changes rec.view.
var VIEW = {
  reset: function (arg) { rec.view[arg.room] = []; },
  edit: function (msg) {
    var i = findIn(msg.room, msg.id);
    if (i >= 0) viewOf(msg.room)[i] = plainCopy(msg);
  },
  remove: function (arg) {
    var i = findIn(arg.room, arg.id);
    if (i >= 0) viewOf(arg.room).splice(i, 1);
  },
  reactions: function (arg) {
    var i = findIn(arg.room, arg.id);
    if (i >= 0) viewOf(arg.room)[i].reactions = plainCopy(arg.reactions);
  }
};

window.start = function (name, token, options) {
  var opts = Object.assign({auth: {name: name, token: token}}, options || {});
  var client = chitchat.connect(window.CHAT_URL || '/chat', opts);
  CONNECTION_EVENTS.forEach(function (ev) {
    chitchat.on(ev, function (arg) {
      rec.events.push([ev, plainCopy(arg)]);
      rec.eventAt.push(Date.now());
      rec.states.push(chitchat.state());
    });
  });
  ROOM_EVENTS.forEach(function (ev) {
    chitchat.on(ev, function (arg) {
      rec.room.push([ev, plainCopy(arg)]);
      rec.roomAt.push(Date.now());
      if (VIEW[ev]) VIEW[ev](arg);
    });
  });
  chitchat.on('messages', function (list) {
    var now = Date.now();
    list.forEach(function (m) {
      rec.messages.push(m);
      rec.received[m.id] = now;
      viewOf(m.room).push(plainCopy(m));
    });
  });
  return client.state();
};

/** A promise as {ok: true, value} or {ok: false, meta}. */
function settle(promise) {
  return promise.then(
    function (value) { return {ok: true, value: plainCopy(value)}; },
    function (meta) { return {ok: false, meta: plainCopy(meta)}; });
}

window.sendText = function (text) {
  return chitchat.send({text: text}).then(
    function (msg) { return {ok: true, msg: msg}; },
    function (meta) { return {ok: false, meta: meta}; });
};
window.sendTo = function (room, text) { return settle(chitchat.send({text: text}, {room: room})); };
window.joinRoom = function (room, data) { return settle(chitchat.join(room, data)); };
window.leaveRoom = function (room) { return settle(chitchat.leave(room)); };
// Not `history`: that is the page's own window.history.
window.historyOf = function (room, options) { return settle(chitchat.history(room, options)); };
window.markRead = function (room, seq) { return settle(chitchat.markRead(room, seq)); };
window.editMsg = function (room, id, data) { return settle(chitchat.edit(room, id, data)); };
window.removeMsg = function (room, id) { return settle(chitchat.remove(room, id)); };
/** Send without waiting for the answer (e.g. offline); rec.sends[text] records it. */
window.sendLater = function (room, text) {
  var record = rec.sends[text] = {settled: 0, ok: null};
  settle(chitchat.send({text: text}, {room: room})).then(function (result) {
    record.settled += 1;
    Object.assign(record, result);
  });
  return chitchat.pending().length;
};
window.reactTo = function (room, id, emoji) { return settle(chitchat.react(room, id, emoji)); };

window.texts = function () {
  return rec.messages.map(function (m) { return m.data.text; });
};
/** The texts of `room` as shown now (rec.view); the default room's name, or null for pushes. */
window.shown = function (room) {
  return viewOf(room).map(function (m) { return m.data.text; });
};
/** The args of every recorded `ev` event (connection or room), in order. */
window.eventsOf = function (ev) {
  var list = ROOM_EVENTS.indexOf(ev) >= 0 ? rec.room : rec.events;
  return list.filter(function (e) { return e[0] === ev; }).map(function (e) { return e[1]; });
};
window.count = function (ev) {
  return window.eventsOf(ev).length;
};
})();
