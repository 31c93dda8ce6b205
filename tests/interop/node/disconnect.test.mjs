// Disconnections initiated by the server (disconnect-me) and by the client.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, call, once, record, until } from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

for (const mode of TRANSPORT_MODES) {
  describe(`disconnect (${mode.name})`, () => {
    test("disconnect-me gives reason 'io server disconnect' and no reconnection", async () => {
      // Reconnection on: the client must still not try again after a server disconnect.
      const { socket } = await clients.connect(server.url, mode, { reconnection: true });
      const reconnects = record(socket.io, "reconnect_attempt");
      const disconnected = once(socket, "disconnect");
      socket.emit("disconnect-me");
      const [reason] = await disconnected;
      assert.equal(reason, "io server disconnect");
      assert.equal(socket.connected, false);
      assert.equal(socket.active, false);
      assert.deepEqual(reconnects, []);
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
      const gone = once(a, "disconnect");
      a.emit("disconnect-me");
      assert.equal((await gone)[0], "io server disconnect");
      assert.equal(b.connected, true);
      assert.deepEqual(await call(b, "message-with-ack", "still here"), ["still here"]);
    });

    test("a client disconnect gives reason 'io client disconnect'; others are unaffected", async () => {
      const a = (await clients.connect(server.url, mode)).socket;
      const b = (await clients.connect(server.url, mode)).socket;
      const room = `cd-${mode.final}-${Math.random()}`;
      await call(a, "join", room);
      await call(b, "join", room);
      const gone = once(a, "disconnect");
      a.disconnect();
      assert.equal((await gone)[0], "io client disconnect");
      const seen = record(b, "after");
      await call(b, "broadcast", room, "after", 1);
      await until(seen, 1);
      assert.deepEqual(seen, [[1]]);
    });
  });
}
