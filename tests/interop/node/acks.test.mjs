// Events and acknowledgements in both directions with the official Node client.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, WAIT_MS, call, once, until } from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

const JSON_ARGS = ["text", 42, -1.5, true, false, null, [1, "two", [3]], { a: { b: [null, {}] } }];

for (const mode of TRANSPORT_MODES) {
  describe(`events and acks (${mode.name})`, () => {
    test("message is echoed back as message-back with the same arguments", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const back = once(socket, "message-back");
      socket.emit("message", ...JSON_ARGS);
      assert.deepEqual(await back, JSON_ARGS);
    });

    test("client→server ack: message-with-ack acknowledges with the same arguments", async () => {
      const { socket } = await clients.connect(server.url, mode);
      assert.deepEqual(await call(socket, "message-with-ack", ...JSON_ARGS), JSON_ARGS);
    });

    test("client→server ack with a single argument, via emitWithAck", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const res = await socket.timeout(WAIT_MS).emitWithAck("message-with-ack", { hello: "world" });
      assert.deepEqual(res, { hello: "world" });
    });

    test("client→server ack without arguments", async () => {
      const { socket } = await clients.connect(server.url, mode);
      assert.deepEqual(await call(socket, "message-with-ack"), []);
    });

    test("concurrent acks are each matched to their own request", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => call(socket, "message-with-ack", i, `n${i}`)),
      );
      results.forEach((res, i) => assert.deepEqual(res, [i, `n${i}`]));
    });

    test("server→client ack: request-ack reports the client's ack arguments", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const received = [];
      socket.on("please-ack", (...args) => {
        const ack = args.pop();
        received.push(args);
        ack("got", { args });
      });
      const result = once(socket, "request-ack-result");
      socket.emit("request-ack", "please-ack", 1, "two", { three: [3] });
      const [value] = await result;
      assert.deepEqual(received, [[1, "two", { three: [3] }]]);
      assert.deepEqual(value, ["got", { args: [1, "two", { three: [3] }] }]);
    });

    test("server→client ack with no arguments either way", async () => {
      const { socket } = await clients.connect(server.url, mode);
      socket.on("empty-ack", (ack) => ack());
      const result = once(socket, "request-ack-result");
      socket.emit("request-ack", "empty-ack");
      assert.deepEqual(await result, [[]]);
    });

    test("server→client acks interleaved with client→server acks", async () => {
      const { socket } = await clients.connect(server.url, mode);
      socket.on("echo-ack", (n, ack) => ack(n * 2));
      const results = [];
      socket.on("request-ack-result", (v) => results.push(v));
      const calls = [];
      for (let i = 0; i < 10; i++) {
        socket.emit("request-ack", "echo-ack", i);
        calls.push(call(socket, "message-with-ack", i));
      }
      assert.deepEqual(await Promise.all(calls), Array.from({ length: 10 }, (_, i) => [i]));
      await until(results, 10);
      assert.deepEqual(
        results.map((r) => r[0]).sort((a, b) => a - b),
        Array.from({ length: 10 }, (_, i) => i * 2),
      );
    });
  });
}

describe("server→client ack timeout", () => {
  test("a client that never acks is reported as {error: 'timeout'} (after the 5 s timeout)", async () => {
    const { socket } = await clients.connect(server.url, TRANSPORT_MODES[0]);
    let got = null;
    socket.on("never-ack", (arg) => (got = arg)); // takes no ack callback
    const result = once(socket, "request-ack-result", 15_000);
    socket.emit("request-ack", "never-ack", "x");
    assert.deepEqual(await result, [{ error: "timeout" }]);
    assert.equal(got, "x");
  });
});
