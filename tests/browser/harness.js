// Records everything a chitchat client does, for the browser tests to read.
window.rec = {events: [], messages: [], states: [], received: {}};
window.start = function (name, token, options) {
  var opts = Object.assign({auth: {name: name, token: token}}, options || {});
  var client = chitchat.connect(window.CHAT_URL || '/chat', opts);
  ['connect', 'disconnect', 'reconnect', 'unauthorized', 'error'].forEach(function (ev) {
    chitchat.on(ev, function (arg) {
      rec.events.push([ev, arg === undefined ? null : JSON.parse(JSON.stringify(arg))]);
      rec.states.push(chitchat.state());
    });
  });
  chitchat.on('messages', function (list) {
    var now = Date.now();
    list.forEach(function (m) { rec.messages.push(m); rec.received[m.id] = now; });
  });
  return client.state();
};
window.sendText = function (text) {
  return chitchat.send({text: text}).then(
    function (msg) { return {ok: true, msg: msg}; },
    function (meta) { return {ok: false, meta: meta}; });
};
window.texts = function () {
  return rec.messages.map(function (m) { return m.data.text; });
};
window.count = function (ev) {
  return rec.events.filter(function (e) { return e[0] === ev; }).length;
};
