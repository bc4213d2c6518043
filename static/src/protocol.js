/*
 * The chitchat wire protocol, version 1: the constants of chitchat/protocol.py
 * (described in docs/PROTOCOL.md), mirrored for the browser client.
 *
 * tests/test_protocol_agreement.py loads this file with Node's require() and checks
 * that its enumerable keys equal the server's constants. static/build.js wraps it in
 * a function that supplies `module`, so in the browser bundle it defines no global.
 */
'use strict';

var protocol = {
  VERSION: 1,
  CLIENT_FRAMES: [
    'auth', 'send', 'join', 'leave', 'typing', 'history', 'read', 'edit', 'remove', 'react',
    'ping', 'pong'
  ],
  SERVER_FRAMES: [
    'welcome', 'unauthorized', 'messages', 'edit', 'remove', 'reactions', 'reset', 'joined',
    'removed', 'presence', 'typing', 'read', 'ack', 'nack', 'ping', 'pong', 'error'
  ],
  CODES: {
    MALFORMED: 4000,
    UNKNOWN_TYPE: 4001,
    TOO_LARGE: 4002,
    NOT_AUTHORIZED: 4003,
    ORIGIN_REFUSED: 4004,
    AUTH_TIMEOUT: 4005,
    UNSUPPORTED_VERSION: 4006,
    INVALID: 4007,
    ALREADY_AUTHORIZED: 4008,
    HEARTBEAT_TIMEOUT: 4009,
    FLOODED: 4010,
    TOO_DEEP: 4011,
    FLOOD_CLOSED: 4012,
    TOO_MANY_CONNECTIONS: 4013,
    RESTARTING: 4014,
    BAD_ROOM: 4015,
    NOT_JOINED: 4016
  },
  // After an error frame with one of these codes the server closes the connection.
  FATAL_CODES: [4004, 4005, 4006, 4009, 4012, 4013, 4014],
  // Sizes the server enforces: code points of a room name and of an emoji, characters
  // of a cid, distinct reactions on one message, messages in one history page.
  LIMITS: {ROOM_NAME: 200, CID: 64, EMOJI: 32, REACTIONS: 20, HISTORY: 100}
};

// The `error` values with which the client itself rejects a promise. Not part of the
// wire format, so not enumerable: the agreement test compares only the above.
Object.defineProperty(protocol, 'CLIENT_REJECTIONS', {
  enumerable: false,
  value: {
    NOT_CONNECTED: 'not_connected', // called in state 'disconnected' (or, for requests
                                    // that do not wait, while not connected)
    OUTBOX_FULL: 'outbox_full',     // `outbox` sends already waiting for an answer
    DISCONNECTED: 'disconnected',   // stopped (or, for requests that do not wait, the
                                    // connection was lost) before the answer
    INVALID: 'invalid',             // data is not a plain, JSON-encodable object
    PROTOCOL: 'protocol'            // an error frame answered it, or the client's own
                                    // check of a room name, emoji, id or number failed
  }
});

function deepFreeze(value) {
  Object.getOwnPropertyNames(value).forEach(function (key) {
    if (value[key] && typeof value[key] === 'object') deepFreeze(value[key]);
  });
  return Object.freeze(value);
}

module.exports = deepFreeze(protocol);
