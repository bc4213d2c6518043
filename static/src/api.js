/*
 * The module-level API, window.chitchat: the last fragment of the build, and the only
 * thing it defines globally. A build fragment (see util.js).
 *
 * chitchat.connect(url, options) makes a new Client and connects it; the other
 * module-level functions act on that client (the last one made this way). A second
 * chitchat.connect() disconnects the previous module-level client.
 *
 * chitchat.on()/off() register "module-level" handlers: they are attached to the
 * current module-level client and remembered, so that handlers registered BEFORE
 * the first chitchat.connect() (queued) and every later chitchat.connect() get them.
 * Handlers registered on a Client object directly stay on that client.
 */

var moduleClient = null;
var moduleHandlers = [];  // [event, fn] pairs, in registration order

function notConnected() {
  return rejected({error: REJECT.NOT_CONNECTED});
}

function always(value) {
  return function () { return typeof value === 'function' ? value() : value; };
}

// Client methods mirrored on window.chitchat, with what each does before connect().
var MIRRORED = {
  send: notConnected, join: notConnected, leave: notConnected, history: notConnected,
  markRead: notConnected, edit: notConnected, remove: notConnected, react: notConnected,
  typing: always(undefined),
  rooms: always(function () { return []; }),
  members: always(function () { return []; }),
  pending: always(function () { return []; }),
  state: always('disconnected'),
  isConnected: always(false),
  isConnecting: always(false),
  isDisconnected: always(true),
  isReconnecting: always(false)
};

var chitchat = {
  version: VERSION,
  protocol: protocol,
  Client: Client,

  /** Connect to the chitchat server at `url` with `options`; returns the new Client. */
  connect: function (url, options) {
    var client = new Client(url, options);
    if (moduleClient) moduleClient.disconnect();
    moduleHandlers.forEach(function (pair) { client.on(pair[0], pair[1]); });
    moduleClient = client;
    return client.connect();
  },

  /** Call fn on `event` of the module-level client, present and future. */
  on: function (event, fn) {
    checkHandler(event, fn);
    moduleHandlers.push([event, fn]);
    if (moduleClient) moduleClient.on(event, fn);
    return chitchat;
  },

  /** Forget a handler given to chitchat.on (every handler of `event` if fn is omitted). */
  off: function (event, fn) {
    var keep = [];
    moduleHandlers.forEach(function (pair) {
      if (pair[0] !== event || (fn !== undefined && pair[1] !== fn)) keep.push(pair);
      else if (moduleClient) moduleClient.off(event, pair[1]);  // not the client's own
    });
    moduleHandlers = keep;
    return chitchat;
  },

  /** Client.disconnect on the module-level client. */
  disconnect: function () {
    if (moduleClient) moduleClient.disconnect();
    return chitchat;
  }
};

Object.keys(MIRRORED).forEach(function (name) {
  chitchat[name] = function () {
    return moduleClient
      ? moduleClient[name].apply(moduleClient, arguments)
      : MIRRORED[name].apply(undefined, arguments);
  };
});

window.chitchat = chitchat;
