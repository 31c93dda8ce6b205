// Namespaces: `/` is served, any other namespace is refused with "Invalid namespace".

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, call, connected, once } from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

for (const mode of TRANSPORT_MODES) {
  describe(`namespaces (${mode.name})`, () => {
    test("a refused namespace gives connect_error 'Invalid namespace'", async () => {
      const socket = clients.open(`${server.url}/does-not-exist`, mode);
      const error = once(socket, "connect_error");
      socket.connect();
      const [err] = await error;
      assert.equal(err.message, "Invalid namespace");
      assert.equal(socket.connected, false);
      assert.equal(socket.active, false, "a refused namespace must not be retried");
    });

    test("a refused namespace does not disturb `/` on the same connection", async () => {
      const manager = new Manager(server.url, { reconnection: false, autoConnect: false, ...mode.opts });
      const root = manager.socket("/");
      const other = manager.socket("/nope");
      clients.sockets.push(root, other);
      const error = once(other, "connect_error");
      root.connect();
      other.connect();
      await connected(root);
      assert.equal((await error)[0].message, "Invalid namespace");
      assert.equal(root.connected, true);
      assert.deepEqual(await call(root, "message-with-ack", "fine"), ["fine"]);
    });

    test("the explicit `/` namespace connects", async () => {
      const { socket } = await clients.connect(`${server.url}/`, mode);
      assert.equal(socket.nsp, "/");
      assert.deepEqual(await call(socket, "message-with-ack", 1), [1]);
    });
  });
}
