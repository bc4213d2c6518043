// What the page knows, without any DOM: the user, the rooms and their messages.

export const app = {
  me: null,          // this user's id, from the 'connect' event
  shown: null,       // the name of the room on screen
  rooms: new Map(),  // name -> Room, in the order the list shows them
  editing: null,     // the id of the message in the inline editor
  deleting: null     // the id of the message asking "delete?"
};

export class Room {
  constructor(name) {
    this.name = name;
    this.joined = false;   // false while its join() is under way
    this.messages = [];    // oldest first, by seq
    this.lastRead = 0;     // this user's read position
    this.extra = 0;        // unread messages older than what is loaded (from the join answer)
    this.reads = {};       // user -> read position, from join answers and 'read' events
    this.members = [];
    this.typing = [];
    this.more = true;      // older messages may exist on the server
    this.loadingOlder = false;
  }

  find(id) {
    return this.messages.find((m) => m.id === id) || null;
  }

  /** Put in a message (new, or a newer state of one known): kept in seq order. */
  put(msg) {
    const i = this.messages.findIndex((m) => m.id === msg.id);
    if (i >= 0) {
      this.messages[i] = msg;
      return false;
    }
    let at = this.messages.length;
    while (at > 0 && this.messages[at - 1].seq > msg.seq) at--;
    this.messages.splice(at, 0, msg);
    return true;
  }

  drop(id) {
    this.messages = this.messages.filter((m) => m.id !== id);
  }

  clear() {
    this.messages = [];
    this.extra = 0;
    this.more = true;
  }

  newest() {
    return this.messages.length ? this.messages[this.messages.length - 1] : null;
  }

  /** Messages from others after the read position. */
  unread(me) {
    const after = this.messages.filter((m) => m.user !== me && m.seq > this.lastRead);
    return this.extra + after.length;
  }

  /** Take in a join answer: read positions, members, and unread beyond what is loaded. */
  joinedWith(info, me, counted) {
    this.joined = true;
    this.lastRead = Math.max(this.lastRead, info.lastRead || 0);
    Object.assign(this.reads, info.reads || {});
    this.members = info.members || [];
    // The answer's `unread` counts the history that came before it; what the history
    // did not bring (older than it) is kept apart. The default room's history comes
    // after its answer, so there every unread message is counted as it arrives.
    this.extra = counted ? Math.max(0, (info.unread || 0) - this.unread(me)) : 0;
  }

  /** A read position moved (this user's own, from any tab, included). */
  read(user, seq, me) {
    this.reads[user] = Math.max(this.reads[user] || 0, seq);
    if (user === me && seq > this.lastRead) {
      this.lastRead = seq;
      const newest = this.newest();
      if (!newest || seq >= newest.seq) this.extra = 0;
    }
  }

  /** Who (besides this user and the author) has read up to the newest message. */
  seenBy(me) {
    const newest = this.newest();
    if (!newest) return [];
    return Object.keys(this.reads)
      .filter((u) => u !== me && u !== newest.user && this.reads[u] >= newest.seq)
      .sort();
  }
}

/** The room of `name`, made (not yet joined) if the page did not know it. */
export function roomOf(name) {
  let room = app.rooms.get(name);
  if (!room) {
    room = new Room(name);
    app.rooms.set(name, room);
  }
  return room;
}
