/*
 * Transports: thin adapters from SockJS, the native WebSocket or a factory of your
 * own to one interface. A build fragment (see util.js).
 *
 * A transport factory is called once per attempt as factory(url, callbacks), where
 * callbacks are {onopen(), onmessage(text), onclose(reason)} (reason: a string or
 * {code, reason}), and returns {send(text), close()}. The client ignores any callback
 * that comes after it has closed or replaced the transport.
 */

function resolveUrl(url) {
  return new URL(url, window.location.href);
}

/** `url` as the native WebSocket endpoint: <url>/ws with the ws: or wss: scheme. */
function websocketUrl(url) {
  var u = resolveUrl(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  u.pathname = u.pathname.replace(/\/+$/, '') + '/ws';
  u.hash = '';
  return u.href;
}

function sockjsTransport(sockjsOptions) {
  return function (url, callbacks) {
    var SockJS = window.SockJS;
    if (typeof SockJS !== 'function') throw new Error('SockJS is not loaded');
    var sock = new SockJS(resolveUrl(url).href, null, sockjsOptions);
    sock.onopen = function () { callbacks.onopen(); };
    sock.onmessage = function (e) { callbacks.onmessage(e.data); };
    sock.onclose = function (e) { callbacks.onclose({code: e.code, reason: e.reason}); };
    return {
      send: function (text) { sock.send(text); },
      close: function () { sock.close(); }
    };
  };
}

function websocketTransport(url, callbacks) {
  var ws = new WebSocket(websocketUrl(url));
  ws.onopen = function () { callbacks.onopen(); };
  ws.onmessage = function (e) { if (typeof e.data === 'string') callbacks.onmessage(e.data); };
  ws.onclose = function (e) {
    callbacks.onclose({code: e.code, reason: e.reason || 'websocket closed'});
  };
  return {
    send: function (text) { ws.send(text); },
    close: function () { ws.close(); }
  };
}

function transportFactory(opts) {
  if (typeof opts.transport === 'function') return opts.transport;
  return opts.transport === 'websocket' ? websocketTransport : sockjsTransport(opts.sockjs);
}
