#!/usr/bin/env node
/*
 * Builds chitchat/static/chitchat.js, the one file the server serves at
 * <prefix>/chitchat.js (and names as sockjs_url for SockJS's iframe page):
 *
 *   1. sockjs-client's dist/sockjs.min.js, wrapped so that it always defines the
 *      global window.SockJS, even on a page that has AMD `define` or CommonJS globals;
 *   2. src/protocol.js (wrapped as `protocol`) and the fragments of FRAGMENTS, in that
 *      order, in one private function scope, which define the global window.chitchat
 *      and do nothing else at load time (sockjs-tornado's iframe page loads it too).
 *      No bundler: each fragment sees the names the ones before it declared.
 *
 * Usage: cd static && npm ci && npm run build. Needs no network once installed.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const SOCKJS_VERSION = '1.6.1';
const here = __dirname;
const outFile = path.join(here, '..', 'chitchat', 'static', 'chitchat.js');

// Each uses only what the fragments before it define (at load time; functions that
// run later, such as the Client's methods, may use any).
const FRAGMENTS = [
  'util.js',         // helpers, backoff, token bucket, Deferred, Emitter
  'transports.js',   // SockJS, native WebSocket, custom factories
  'connection.js',   // the Client state machine
  'requests.js',     // ref-matched requests; history, edit, remove, react, markRead
  'rooms.js',        // rooms, positions, presence, typing; join, leave
  'outbox.js',       // send, the outbox, pacing
  'api.js'           // window.chitchat
];

function read(file) {
  return fs.readFileSync(file, 'utf8');
}

function sockjsSource() {
  const pkg = JSON.parse(read(require.resolve('sockjs-client/package.json', {paths: [here]})));
  if (pkg.version !== SOCKJS_VERSION) {
    throw new Error(
      `sockjs-client ${pkg.version} is installed, ${SOCKJS_VERSION} expected: run npm ci`);
  }
  const file = require.resolve('sockjs-client/dist/sockjs.min.js', {paths: [here]});
  // The source map is not shipped, so drop the comment that points to it.
  return read(file).replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

function withFinalNewline(source) {
  return source.replace(/\s+$/, '') + '\n';
}

/** The chitchat part alone (no SockJS): also what static/test/ loads into a vm. */
function clientSource() {
  return [
    '// ---- chitchat: defines window.chitchat.',
    '(function () {',
    "'use strict';",
    'var protocol = (function (module) {',
    withFinalNewline(read(path.join(here, 'src', 'protocol.js'))) + 'return module.exports;',
    '})({exports: {}});',
    '',
    FRAGMENTS.map((name) => `// ---- ${name}\n` + withFinalNewline(read(path.join(here, 'src', name)))).join('\n') + '})();',
    ''
  ].join('\n');
}

function bundle() {
  const chitchatVersion = JSON.parse(read(path.join(here, 'package.json'))).version;
  return [
    `/*! chitchat.js ${chitchatVersion}: the browser client of chitchat.`,
    ' * Built by static/build.js from static/src/: do not edit.',
    ` * Includes sockjs-client ${SOCKJS_VERSION} (https://github.com/sockjs/sockjs-client),`,
    ' * Copyright (c) 2011-2018 The sockjs-client Authors, MIT license. */',
    '',
    '// ---- sockjs-client: define, module, exports and require are hidden so that it',
    '// ---- always takes its "browser global" branch and sets window.SockJS.',
    '(function (define, module, exports, require) {',
    withFinalNewline(sockjsSource()) + '}).call(window);',
    '',
    clientSource()
  ].join('\n');
}

function main() {
  const text = bundle();
  fs.mkdirSync(path.dirname(outFile), {recursive: true});
  fs.writeFileSync(outFile, text);
  console.log(`wrote ${path.relative(process.cwd(), outFile)} (${text.length} bytes)`);
}

module.exports = {bundle, clientSource};

if (require.main === module) main();
