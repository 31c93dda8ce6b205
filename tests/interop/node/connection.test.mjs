// Connecting with the official Node client: handshake auth, ids, transports.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, WAIT_MS, call } from "../lib/client.mjs";
import { RawWebSocket } from "../lib/raw-websocket.mjs";

const { server, clients } = fixtureSuite();

/**
 * A raw Engine.IO session of the fixture (no client library), on long-polling or
 * WebSocket: `send(packet)` one packet, `next()` the next packet received (pings
 * answered and skipped), `close()`.
 */
async function rawSession(transport) {
  if (transport === "websocket") {
    const { status, ws } = await RawWebSocket.open(server.port, "/socket.io/?EIO=4&transport=websocket");
    assert.equal(status, 101);
    let read = 0;
    const session = {
      send: (packet) => ws.send(packet),
      async next() {
        for (;;) {
          const packet = await ws.next((_, i) => i >= read, WAIT_MS).catch((err) => {
            throw new Error(`${err.message}; after ${read} packets`);
          });
          read = ws.messages.indexOf(packet, read) + 1;
          if (packet !== "2") return packet;
          ws.send("3");
        }
      },
      close: () => ws.reset(),
    };
    assert.match(await session.next(), /^0\{/, "the open packet");
    return session;
  }
  const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
  const open = await fetch(base);
  const handshake = await open.text();
  assert.equal(open.status, 200, handshake);
  assert.match(handshake, /^0\{/, "the open packet");
  const url = `${base}&sid=${encodeURIComponent(JSON.parse(handshake.slice(1)).sid)}`;
  const queue = [];
  const post = async (packet) => {
    const res = await fetch(url, { method: "POST", body: packet, headers: { "content-type": "text/plain;charset=UTF-8" } });
    const text = await res.text();
    assert.equal(res.status, 200, `POST ${packet.slice(0, 40)}: ${text}`);
    assert.equal(text, "ok");
  };
  return {
    send: post,
    async next() {
      while (!queue.length) {
        const res = await fetch(url, { signal: AbortSignal.timeout(WAIT_MS) });
        const text = await res.text();
        assert.equal(res.status, 200, `GET: ${text}`);
        for (const packet of text.split("\x1e")) {
          if (packet === "2") await post("3");
          else queue.push(packet);
        }
      }
      return queue.shift();
    },
    // Best effort: a failed test's session may be gone already.
    close: () => fetch(url, { method: "POST", body: "1" }).then((res) => res.arrayBuffer(), () => {}),
  };
}

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

    test("an auth payload over the 16 KiB cap gets connect_error", async () => {
      const auth = { token: "t".repeat(17 * 1024) };
      await assert.rejects(clients.connect(server.url, mode, { auth }), /^Error: connect_error: auth payload too large$/);
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

// The cap refuses the namespace's CONNECT, not the Engine.IO connection: the same
// session (raw, as the official client would open a new one) connects afterwards.
for (const transport of ["polling", "websocket"]) {
  test(`an auth payload over the 16 KiB cap is refused and the same session (${transport}) then connects`, async () => {
    const session = await rawSession(transport);
    try {
      await session.send(`40${JSON.stringify({ token: "t".repeat(17 * 1024) })}`);
      assert.equal(await session.next(), '44{"message":"auth payload too large"}');
      await session.send("40{}");
      const connect = await session.next();
      assert.match(connect, /^40\{/);
      const { sid, ...rest } = JSON.parse(connect.slice(2));
      assert.equal(typeof sid, "string");
      assert.deepEqual(rest, {});
      assert.equal(await session.next(), '42["auth",{}]');
      await session.send('421["message-with-ack","still here"]');
      assert.equal(await session.next(), '431["still here"]');
    } finally {
      await session.close();
    }
  });
}
