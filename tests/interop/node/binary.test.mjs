// Binary arguments (Buffer, Uint8Array), alone, several per packet, nested in objects and
// arrays, and inside acknowledgements in both directions.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import {
  TRANSPORT_MODES,
  asBuffer,
  barrier,
  bytes,
  call,
  isBinary,
  once,
  record,
  until,
} from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

/** Asserts that `actual` is `expected` with every binary leaf delivered as binary. */
function assertSameShape(actual, expected, path = "$") {
  if (isBinary(expected)) {
    assert.ok(isBinary(actual), `${path}: expected binary, got ${JSON.stringify(actual)}`);
    assert.ok(asBuffer(actual).equals(asBuffer(expected)), `${path}: bytes differ`);
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array`);
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => assertSameShape(actual[i], e, `${path}[${i}]`));
  } else if (expected !== null && typeof expected === "object") {
    assert.equal(typeof actual, "object", `${path}: expected an object`);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${path}: keys`);
    for (const k of Object.keys(expected)) assertSameShape(actual[k], expected[k], `${path}.${k}`);
  } else {
    assert.deepEqual(actual, expected, path);
  }
}

const nested = () => ({
  name: "file.bin",
  data: bytes(300),
  parts: [bytes(3, 7), { deep: new Uint8Array([255, 0, 128]) }, "text", 5],
  meta: { empty: Buffer.alloc(0), flag: true },
});

for (const mode of TRANSPORT_MODES) {
  describe(`binary (${mode.name})`, () => {
    test("a Buffer argument comes back in message-back", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const back = once(socket, "message-back");
      socket.emit("message", bytes(256));
      assertSameShape(await back, [bytes(256)]);
    });

    // On WebSocket the server cuts a frame over 4 KiB into pieces before its WebSocket
    // library reads it (so no connection keeps a buffer the size of its largest
    // message): a long text with characters cut between pieces, and a long
    // attachment, still arrive whole.
    test("a long text and a long binary argument come back whole", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const text = "é€a".repeat(40_000); // 240,000 bytes of UTF-8
      const data = bytes(300_000, 9);
      const back = once(socket, "message-back");
      socket.emit("message", text, data);
      assertSameShape(await back, [text, data]);
    });

    test("a Uint8Array argument comes back byte for byte", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const data = new Uint8Array([0, 1, 2, 253, 254, 255]);
      assertSameShape(await call(socket, "message-with-ack", data), [data]);
    });

    test("several binary arguments mixed with JSON in one packet, in order", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const args = [bytes(10, 1), "between", bytes(20, 2), 3, bytes(30, 3)];
      const back = once(socket, "message-back");
      socket.emit("message", ...args);
      assertSameShape(await back, args);
    });

    test("binary nested in objects and arrays", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const back = once(socket, "message-back");
      socket.emit("message", nested());
      assertSameShape(await back, [nested()]);
    });

    test("binary in a client→server ack", async () => {
      const { socket } = await clients.connect(server.url, mode);
      assertSameShape(await call(socket, "message-with-ack", nested(), bytes(5)), [nested(), bytes(5)]);
    });

    test("binary in a server→client ack, and binary in the request", async () => {
      const { socket } = await clients.connect(server.url, mode);
      let received = null;
      socket.on("bin-ack", (...args) => {
        const ack = args.pop();
        received = args;
        ack(bytes(64, 9), { inner: bytes(2, 200) }, "plain");
      });
      const result = once(socket, "request-ack-result");
      socket.emit("request-ack", "bin-ack", bytes(16, 4), { k: bytes(4, 100) });
      const [value] = await result;
      assertSameShape(received, [bytes(16, 4), { k: bytes(4, 100) }]);
      assertSameShape(value, [bytes(64, 9), { inner: bytes(2, 200) }, "plain"]);
    });

    // Ten is the most the official parser accepts in one packet (socket.io-parser's
    // `maxAttachments`, on the client as on Node's server).
    test("ten binary attachments in one packet", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const args = Array.from({ length: 10 }, (_, i) => (i % 2 ? { i, b: bytes(i, i) } : bytes(i + 1, i)));
      assertSameShape(await call(socket, "message-with-ack", ...args), args);
    });

    test("a large binary payload (512 KiB)", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const big = bytes(512 * 1024, 13);
      assertSameShape(await call(socket, "message-with-ack", big), [big]);
    });

    test("a binary broadcast reaches every member of the room", async () => {
      const a = (await clients.connect(server.url, mode)).socket;
      const b = (await clients.connect(server.url, mode)).socket;
      const room = `bin-${mode.final}-${Math.random()}`;
      await call(a, "join", room);
      await call(b, "join", room);
      const seenA = record(a, "blob");
      const seenB = record(b, "blob");
      await call(a, "broadcast", room, "blob", bytes(100), { nested: [bytes(1, 42)] });
      // Everything the broadcast sent them (a late duplicate too) is in once these resolve.
      await Promise.all([barrier(a), barrier(b)]);
      for (const seen of [seenA, seenB]) {
        assertSameShape(seen, [[bytes(100), { nested: [bytes(1, 42)] }]]);
      }
    });

    test("binary and text events interleaved keep their order", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const backs = record(socket, "message-back");
      const sent = [];
      for (let i = 0; i < 60; i++) {
        const arg = i % 3 === 0 ? bytes(8, i) : i % 3 === 1 ? { i } : [i, bytes(2, i)];
        sent.push([arg]);
        socket.emit("message", arg);
      }
      await until(backs, sent.length);
      await barrier(socket);
      assertSameShape(backs, sent);
    });
  });
}
