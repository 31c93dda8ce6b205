// A client reconnects by itself when the server goes away and comes back on the same
// port, whether the server crashed (SIGKILL) or shut down cleanly (SIGTERM).

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

const RESTARTS = [
  { name: "crash (SIGKILL)", stop: (s) => s.kill(), graceful: false },
  { name: "clean shutdown (SIGTERM)", stop: (s) => s.stop("SIGTERM"), graceful: true },
];

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
        await call(socket, "join", "before-restart");

        const disconnected = once(socket, "disconnect");
        const exit = await restart.stop(first);
        if (restart.graceful) {
          assert.deepEqual(exit, { code: 0, signal: null }, "SIGTERM must exit 0");
        }
        const [reason] = await disconnected;
        assert.notEqual(reason, "io server disconnect", "that reason would stop reconnection");
        assert.ok(
          ["transport close", "transport error", "ping timeout"].includes(reason),
          `unexpected disconnect reason ${reason}`,
        );
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
        // A fresh server knows nothing of the old session's rooms.
        assert.deepEqual(await call(socket, "rooms"), [[socket.id]]);
        assert.equal(second.port, first.port);
      });
    });
  }
}
