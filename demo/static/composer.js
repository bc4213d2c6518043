// The composer: send to the shown room (queued by the client while reconnecting,
// shown as pending until the server answers) and tell the room this user types.

import {$, why} from './dom.js';
import {app} from './model.js';
import {renderPending} from './messages.js';

export function initComposer(received) {
  const input = $('text');
  $('compose').addEventListener('submit', (event) => {
    event.preventDefault();
    const room = app.rooms.get(app.shown);
    const text = input.value;
    if (!room || !room.joined) return;
    $('send-error').textContent = '';
    input.value = '';
    const sent = chitchat.send({text}, {room: room.name});
    renderPending();
    sent.then((msg) => {
      renderPending();
      received(msg.room, [msg]);  // the room's own delivery of it follows; shown once
    }, (meta) => {
      renderPending();
      $('send-error').textContent = why(meta, 'Not sent.');
      if (!input.value) input.value = text;  // give the text back to fix and resend
    });
  });
  input.addEventListener('input', () => {
    if (app.shown && input.value) chitchat.typing(app.shown);
  });
}
