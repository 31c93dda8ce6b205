// A client reconnects by itself when the server goes away and comes back on the same
// port, whether the server crashed (SIGKILL) or shut down cleanly (SIGTERM). A clean
// shutdown drains: each session is closed with an Engine.IO `close` packet (the
// fixture's README), which a crash never sends.

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startFixture } from "../lib/fixture.mjs";
import { Clients, TRANSPORT_MODES, call, connected, once, upgradedTo } from "../lib/client.mjs";

const clients = new Clients();
const servers = [];
afterEach(async () => {
  clients.closeAll();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function start(port) {
  const server = await startFixture({ port });
  servers.push(server);
  return server;
}

/** Fast retries so the test does not sit in back-off; the client's own logic still decides. */
const RECONNECT = {
  reconnection: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  randomizationFactor: 0,
};

// `stop("SIGTERM")` itself fails unless the server exits 0.
const RESTARTS = [
  { name: "crash (SIGKILL)", stop: (s) => s.kill(), graceful: false },
  { name: "clean shutdown (SIGTERM)", stop: (s) => s.stop("SIGTERM"), graceful: true },
];

/**
 * Whether the engine of `socket` receives an Engine.IO `close` packet from now on:
 * `closed()` after the disconnect, given its details. Over WebSocket the engine emits
 * the packet; the polling transport takes it itself and closes with the description
 * "transport closed by the server" (engine.io-client's words for that packet).
 */
function watchClosePacket(socket) {
  let seen = false;
  socket.io.engine.on("packet", (packet) => {
    if (packet.type === "close") seen = true;
  });
  return (details) => seen || details?.description === "transport closed by the server";
}

for (const mode of TRANSPORT_MODES) {
  for (const restart of RESTARTS) {
    describe(`reconnect after ${restart.name} (${mode.name})`, () => {
      test("the client reconnects by itself and gets connect and auth again", async () => {
        const first = await start(0);
        const auth = { token: "keep-me" };
        const { socket, auth: firstAuth } = await clients.connect(first.url, mode, {
          ...RECONNECT,
          auth,
        });
        assert.deepEqual((await firstAuth)[0], auth);
        const firstId = socket.id;

        const closePacket = watchClosePacket(socket);
        const disconnected = once(socket, "disconnect");
        await restart.stop(first);
        const [reason, details] = await disconnected;
        if (restart.graceful) {
          // Drained: told to close, then the connection ends.
          assert.equal(reason, "transport close");
          assert.equal(closePacket(details), true, "the drain sends an Engine.IO close packet");
        } else {
          assert.ok(["transport close", "transport error"].includes(reason), `unexpected disconnect reason ${reason}`);
          assert.equal(closePacket(details), false, "a crash sends nothing");
        }
        assert.equal(socket.active, true, "the client must still be trying to reconnect");

        const authAgain = once(socket, "auth", 30_000);
        const reconnected = once(socket.io, "reconnect", 30_000);
        const second = await start(first.port);
        await reconnected;
        await connected(socket);
        if (mode.final === "websocket") await upgradedTo(socket, "websocket");
        assert.equal(socket.connected, true);
        assert.deepEqual(await authAgain, [auth], "auth is sent again on reconnection");
        assert.notEqual(socket.id, firstId, "a new server gives a new session");
        assert.deepEqual(await call(socket, "message-with-ack", "back"), ["back"]);
        assert.equal(second.port, first.port);
      });
    });
  }
}
