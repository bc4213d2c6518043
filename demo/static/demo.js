// The demo page: everything goes through the public chitchat client API.
// Text is always shown with textContent, never as HTML.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };

  function setState(state) {
    var el = $('state');
    el.textContent = state;
    el.className = 'state ' + state;
    el.setAttribute('data-state', state);
  }

  function showOnline(names) {
    var list = $('online');
    list.replaceChildren();
    names.forEach(function (name) {
      var li = document.createElement('li');
      li.textContent = name;
      list.appendChild(li);
    });
  }

  function showMessage(msg) {
    if (msg.user === null && msg.data && msg.data.online) {
      showOnline(msg.data.online);   // the demo server pushes presence this way
      return;
    }
    var li = document.createElement('li');
    li.setAttribute('data-id', msg.id);
    if (msg.user === null) {
      li.className = 'server';
      li.textContent = String(msg.data && msg.data.text);
    } else {
      var who = document.createElement('span');
      who.className = 'who';
      who.textContent = msg.user;
      var text = document.createElement('span');
      text.className = 'text';
      text.textContent = String(msg.data && msg.data.text);
      var when = document.createElement('time');
      when.className = 'when';
      when.textContent = new Date(msg.ts).toLocaleTimeString();
      li.append(who, text, when);
    }
    var box = $('messages');
    box.appendChild(li);
    box.scrollTop = box.scrollHeight;
  }

  $('login').addEventListener('submit', function (event) {
    event.preventDefault();
    var name = $('name').value.trim();
    $('login-error').textContent = '';
    chitchat.connect('/chat', {auth: {name: name}});
    chitchat.on('connect', function (info) {
      setState('connected');
      $('login').hidden = true;
      $('room').hidden = false;
      showOnline(info.meta.online.concat([info.user]).sort());
      $('text').focus();
    });
    chitchat.on('unauthorized', function (meta) {
      setState('disconnected');
      $('login-error').textContent = (meta && meta.reason) || 'Not allowed in.';
    });
    chitchat.on('disconnect', function () { setState(chitchat.state()); });
    chitchat.on('reconnect', function () { setState('reconnecting'); });
    chitchat.on('messages', function (list) { list.forEach(showMessage); });
  });

  $('compose').addEventListener('submit', function (event) {
    event.preventDefault();
    var input = $('text');
    $('send-error').textContent = '';
    chitchat.send({text: input.value}).then(function () {
      input.value = '';
    }, function (meta) {
      $('send-error').textContent = (meta && (meta.reason || meta.error)) || 'Not sent.';
    });
  });
}());
