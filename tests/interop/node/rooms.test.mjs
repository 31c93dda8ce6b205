// Rooms and broadcasts (join, leave, broadcast, broadcast-except-self, rooms) seen by
// several official Node clients at once.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, barrier, bytes, call, record, until } from "../lib/client.mjs";
import { waitFor } from "../lib/wait.mjs";

const { server, clients } = fixtureSuite();

let roomSeq = 0;
/** A room name no other test uses, so tests sharing the server do not interfere. */
const freshRoom = (tag) => `${tag}-${process.pid}-${++roomSeq}`;

async function connectMany(n, mode) {
  const out = [];
  for (let i = 0; i < n; i++) out.push((await clients.connect(server.url, mode)).socket);
  return out;
}

const sorted = (xs) => [...xs].sort();

/**
 * A barrier on each socket: whatever the server sent them before (a broadcast already
 * acknowledged, a late duplicate of it) has arrived once this resolves.
 */
const settle = (...sockets) => Promise.all(sockets.map((s) => barrier(s)));

/** The ids of the sockets in `room` (`null`: every socket), as `fetch-sockets` lists them. */
async function idsIn(socket, room) {
  const [sockets] = await call(socket, "fetch-sockets", room);
  return sockets.map((s) => s.id);
}

for (const mode of TRANSPORT_MODES) {
  describe(`rooms (${mode.name})`, () => {
    test("join acks true and rooms lists the socket's own id and the room", async () => {
      const [a] = await connectMany(1, mode);
      const room = freshRoom("join");
      assert.deepEqual(await call(a, "rooms"), [[a.id]]);
      assert.deepEqual(await call(a, "join", room), [true]);
      const [rooms] = await call(a, "rooms");
      assert.deepEqual(sorted(rooms), sorted([a.id, room]));
    });

    test("joining twice is idempotent; joining several rooms lists them all", async () => {
      const [a] = await connectMany(1, mode);
      const r1 = freshRoom("multi");
      const r2 = freshRoom("multi");
      assert.deepEqual(await call(a, "join", r1), [true]);
      assert.deepEqual(await call(a, "join", r1), [true]);
      assert.deepEqual(await call(a, "join", r2), [true]);
      const [rooms] = await call(a, "rooms");
      assert.deepEqual(sorted(rooms), sorted([a.id, r1, r2]));
    });

    test("broadcast reaches every member, sender included, and nobody else", async () => {
      const [a, b, outsider] = await connectMany(3, mode);
      const room = freshRoom("bcast");
      await call(a, "join", room);
      await call(b, "join", room);
      const seenA = record(a, "news");
      const seenB = record(b, "news");
      const seenOut = record(outsider, "news");
      assert.deepEqual(await call(a, "broadcast", room, "news", "hello", { n: 1 }), [true]);
      await settle(a, b, outsider);
      assert.deepEqual(seenA, [["hello", { n: 1 }]]);
      assert.deepEqual(seenB, [["hello", { n: 1 }]]);
      assert.deepEqual(seenOut, []);
    });

    test("a non-member may broadcast to a room", async () => {
      const [a, b, sender] = await connectMany(3, mode);
      const room = freshRoom("remote");
      await call(a, "join", room);
      await call(b, "join", room);
      const seenA = record(a, "news");
      const seenB = record(b, "news");
      const seenSender = record(sender, "news");
      assert.deepEqual(await call(sender, "broadcast", room, "news", 7), [true]);
      await settle(a, b, sender);
      assert.deepEqual(seenA, [[7]]);
      assert.deepEqual(seenB, [[7]]);
      assert.deepEqual(seenSender, []);
    });

    test("broadcast-except-self reaches the other members but not the sender", async () => {
      const [a, b, c] = await connectMany(3, mode);
      const room = freshRoom("except");
      for (const s of [a, b, c]) await call(s, "join", room);
      const seen = [a, b, c].map((s) => record(s, "chat"));
      assert.deepEqual(await call(a, "broadcast-except-self", room, "chat", "from a"), [true]);
      await settle(a, b, c);
      assert.deepEqual(seen[0], []);
      assert.deepEqual(seen[1], [["from a"]]);
      assert.deepEqual(seen[2], [["from a"]]);
    });

    test("broadcast with no arguments and with many arguments", async () => {
      const [a, b] = await connectMany(2, mode);
      const room = freshRoom("args");
      await call(a, "join", room);
      await call(b, "join", room);
      const seen = record(b, "ev");
      await call(a, "broadcast", room, "ev");
      await call(a, "broadcast", room, "ev", 1, "2", [3], { four: 4 }, null, true);
      await settle(b);
      assert.deepEqual(seen, [[], [1, "2", [3], { four: 4 }, null, true]]);
    });

    test("room and event names with non-ASCII, spaces and separators", async () => {
      const [a, b] = await connectMany(2, mode);
      const room = freshRoom("salle 房间 🚪 #/:*");
      const event = "évènement 事件 🎉 #/:*";
      await call(a, "join", room);
      await call(b, "join", room);
      const seen = record(b, event);
      await call(a, "broadcast", room, event, "ok");
      await settle(b);
      assert.deepEqual(seen, [["ok"]]);
      const [rooms] = await call(b, "rooms");
      assert.ok(rooms.includes(room), `rooms ${JSON.stringify(rooms)} lacks ${room}`);
    });

    test("a broadcast reaches every one of 50 members exactly once", async () => {
      const members = await connectMany(50, mode);
      const room = freshRoom("fanout");
      await Promise.all(members.map((s) => call(s, "join", room)));
      const seen = members.map((s) => record(s, "fan"));
      await call(members[0], "broadcast", room, "fan", "x", bytes(4));
      for (const s of seen) await until(s, 1);
      await Promise.all(members.map((s) => barrier(s)));
      for (const s of seen) {
        assert.equal(s.length, 1);
        assert.equal(s[0][0], "x");
        assert.ok(Buffer.from(s[0][1]).equals(bytes(4)));
      }
    });

    test("leave acks true; the socket no longer gets the room's broadcasts", async () => {
      const [a, b] = await connectMany(2, mode);
      const room = freshRoom("leave");
      await call(a, "join", room);
      await call(b, "join", room);
      assert.deepEqual(await call(b, "leave", room), [true]);
      assert.deepEqual(await call(b, "rooms"), [[b.id]]);
      const seenA = record(a, "news");
      const seenB = record(b, "news");
      await call(a, "broadcast", room, "news", "after leave");
      await settle(a, b);
      assert.deepEqual(seenA, [["after leave"]]);
      assert.deepEqual(seenB, []);
    });

    test("leaving a room the socket is not in still acks true", async () => {
      const [a] = await connectMany(1, mode);
      assert.deepEqual(await call(a, "leave", freshRoom("never-joined")), [true]);
      assert.deepEqual(await call(a, "rooms"), [[a.id]]);
    });

    test("a broadcast to an empty room is acknowledged and delivered to nobody", async () => {
      const [a] = await connectMany(1, mode);
      const seen = record(a, "void");
      assert.deepEqual(await call(a, "broadcast", freshRoom("empty"), "void", 1), [true]);
      await barrier(a);
      assert.deepEqual(seen, []);
    });

    test("each socket's own id is a room holding just that socket", async () => {
      const [a, b, c] = await connectMany(3, mode);
      const seenB = record(b, "direct");
      const seenC = record(c, "direct");
      assert.deepEqual(await call(a, "broadcast", b.id, "direct", "to b"), [true]);
      await settle(b, c);
      assert.deepEqual(seenB, [["to b"]]);
      assert.deepEqual(seenC, []);
    });

    test("a disconnected member is dropped from the room; the others still get broadcasts", async () => {
      const [a, b, c] = await connectMany(3, mode);
      const room = freshRoom("gone");
      for (const s of [a, b, c]) await call(s, "join", room);
      assert.deepEqual(await idsIn(a, room), sorted([a.id, b.id, c.id]));
      c.disconnect();
      // The client's own "disconnect" says nothing of the server: wait until the server
      // no longer lists c in the room.
      await waitFor(
        async () => {
          assert.deepEqual(await idsIn(a, room), sorted([a.id, b.id]));
          return true;
        },
        { what: "the room to hold exactly a and b" },
      );
      const seenA = record(a, "news");
      const seenB = record(b, "news");
      assert.deepEqual(await call(a, "broadcast", room, "news", 1), [true]);
      await settle(a, b);
      assert.deepEqual(seenA, [[1]]);
      assert.deepEqual(seenB, [[1]]);
    });
  });
}

describe("rooms across transports", () => {
  test("a broadcast reaches members on websocket, polling and upgraded connections alike", async () => {
    const room = freshRoom("mixed");
    const sockets = [];
    for (const mode of TRANSPORT_MODES) {
      const { socket } = await clients.connect(server.url, mode);
      await call(socket, "join", room);
      sockets.push(socket);
    }
    const seen = sockets.map((s) => record(s, "mixed"));
    await call(sockets[0], "broadcast", room, "mixed", "all", { x: [1] });
    await settle(...sockets);
    for (const s of seen) assert.deepEqual(s, [["all", { x: [1] }]]);
  });
});
