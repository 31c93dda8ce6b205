// Connecting with the official Node client: handshake auth, ids, transports.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, call } from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

for (const mode of TRANSPORT_MODES) {
  describe(`connection (${mode.name})`, () => {
    test("the auth event echoes the handshake auth", async () => {
      const auth = { token: "abc.def.ghi", user: { id: 42, roles: ["a", "b"] }, ok: true, n: null };
      const { socket, auth: received } = await clients.connect(server.url, mode, { auth });
      assert.equal(socket.connected, true);
      assert.deepEqual((await received)[0], auth);
    });

    test("without auth the auth event carries an empty object, as in Node", async () => {
      const { auth } = await clients.connect(server.url, mode);
      assert.deepEqual((await auth)[0], {});
    });

    test("non-ASCII text in auth and events survives the round trip", async () => {
      const text = "héllo wörld — 你好 — 🚀🎉 — \u0000 \u2028 \"quoted\" \\ slash";
      const { socket, auth } = await clients.connect(server.url, mode, { auth: { text } });
      assert.deepEqual((await auth)[0], { text });
      assert.deepEqual(await call(socket, "message-with-ack", text, { text }), [text, { text }]);
    });

    test("a large auth payload (15 KiB, under the 16 KiB cap) is echoed whole", async () => {
      const auth = { token: "t".repeat(15 * 1024), list: Array.from({ length: 100 }, (_, i) => i) };
      const { auth: received } = await clients.connect(server.url, mode, { auth });
      assert.deepEqual((await received)[0], auth);
    });

    test("an auth payload over the 16 KiB cap gets connect_error, and the connection stays usable", async () => {
      const auth = { token: "t".repeat(17 * 1024) };
      await assert.rejects(clients.connect(server.url, mode, { auth }), /auth payload too large/);
      // The cap refuses the namespace, not the client: a normal connection still works.
      const { socket } = await clients.connect(server.url, mode, { auth: { token: "ok" } });
      assert.equal(socket.connected, true);
    });

    test("each connection gets its own id and settles on the expected transport", async () => {
      const a = (await clients.connect(server.url, mode)).socket;
      const b = (await clients.connect(server.url, mode)).socket;
      assert.equal(typeof a.id, "string");
      assert.ok(a.id.length > 0);
      assert.notEqual(a.id, b.id);
      assert.equal(a.io.engine.transport.name, mode.final);
      assert.equal(b.io.engine.transport.name, mode.final);
    });

    test("many clients connect at once", async () => {
      const sockets = await Promise.all(
        Array.from({ length: 20 }, () => clients.connect(server.url, mode)),
      );
      const ids = new Set(sockets.map(({ socket }) => socket.id));
      assert.equal(ids.size, 20);
      for (const { socket } of sockets) {
        assert.deepEqual(await call(socket, "message-with-ack", socket.id), [socket.id]);
      }
    });
  });
}
