// Disconnections initiated by the server (disconnect-me) and by the client.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, barrier, call, once, record } from "../lib/client.mjs";
import { waitFor } from "../lib/wait.mjs";

const { server, clients } = fixtureSuite();

let roomSeq = 0;
/** A room name no other test uses, so tests sharing the server do not interfere. */
const freshRoom = (tag) => `${tag}-${process.pid}-${++roomSeq}`;

/**
 * Waits until the server, asked through `observer`, lists exactly the sockets `ids` in
 * `room`: what the client library reports of its own disconnection says nothing of
 * whether the server dropped the socket.
 */
async function serverListsExactly(observer, room, ids) {
  await waitFor(
    async () => {
      const [sockets] = await call(observer, "fetch-sockets", room);
      assert.deepEqual(
        sockets.map((s) => s.id),
        [...ids].sort(),
      );
      return true;
    },
    { what: `the server to list exactly ${JSON.stringify(ids)} in ${room}` },
  );
}

for (const mode of TRANSPORT_MODES) {
  describe(`disconnect (${mode.name})`, () => {
    test("disconnect-me gives reason 'io server disconnect' and no reconnection", async () => {
      // Reconnection on: the client must still not try again after a server disconnect.
      const { socket } = await clients.connect(server.url, mode, { reconnection: true });
      const observer = (await clients.connect(server.url, mode)).socket;
      const room = freshRoom("sd");
      await call(socket, "join", room);
      await serverListsExactly(observer, room, [socket.id]);
      const disconnected = once(socket, "disconnect");
      socket.emit("disconnect-me");
      const [reason] = await disconnected;
      assert.equal(reason, "io server disconnect");
      await serverListsExactly(observer, room, []);
      assert.equal(socket.connected, false);
      // The client's own word that it will not reconnect: `active` turns false only when
      // it gave the socket up (on "io server disconnect" or its own disconnect()), and
      // stays true while a reconnection is pending.
      assert.equal(socket.active, false);
    });

    test("after disconnect-me the same client can connect again by hand", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const disconnected = once(socket, "disconnect");
      socket.emit("disconnect-me");
      await disconnected;
      const auth = once(socket, "auth");
      socket.connect();
      await once(socket, "connect");
      assert.deepEqual(await auth, [{}]);
      assert.deepEqual(await call(socket, "message-with-ack", "again"), ["again"]);
    });

    test("disconnect-me only disconnects the sender", async () => {
      const a = (await clients.connect(server.url, mode)).socket;
      const b = (await clients.connect(server.url, mode)).socket;
      const room = freshRoom("sd-only");
      await call(a, "join", room);
      await call(b, "join", room);
      await serverListsExactly(b, room, [a.id, b.id]);
      const gone = once(a, "disconnect");
      a.emit("disconnect-me");
      assert.equal((await gone)[0], "io server disconnect");
      await serverListsExactly(b, room, [b.id]);
      assert.equal(b.connected, true);
      assert.deepEqual(await call(b, "message-with-ack", "still here"), ["still here"]);
    });

    test("a client disconnect gives reason 'io client disconnect'; others are unaffected", async () => {
      const a = (await clients.connect(server.url, mode)).socket;
      const b = (await clients.connect(server.url, mode)).socket;
      const room = freshRoom("cd");
      await call(a, "join", room);
      await call(b, "join", room);
      await serverListsExactly(b, room, [a.id, b.id]);
      const gone = once(a, "disconnect");
      a.disconnect();
      // The reason is the client library's own; the server's side is checked next.
      assert.equal((await gone)[0], "io client disconnect");
      await serverListsExactly(b, room, [b.id]);
      const seen = record(b, "after");
      assert.deepEqual(await call(b, "broadcast", room, "after", 1), [true]);
      await barrier(b);
      assert.deepEqual(seen, [[1]]);
    });
  });
}
