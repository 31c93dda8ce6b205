// Which transport the official Node client ends up on, and that traffic flows on it
// in both directions, including through the polling→websocket upgrade.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, call, once, record, until } from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

const [WEBSOCKET, POLLING, UPGRADE] = TRANSPORT_MODES;

describe("transports", () => {
  test("websocket only: connects on websocket from the first request", async () => {
    const socket = clients.open(server.url, WEBSOCKET);
    const opened = once(socket.io, "open");
    socket.connect();
    await opened;
    assert.equal(socket.io.engine.transport.name, "websocket");
    await once(socket, "connect");
    assert.deepEqual(await call(socket, "message-with-ack", "ws"), ["ws"]);
    assert.equal(socket.io.engine.transport.name, "websocket");
  });

  test("polling only: stays on polling and exchanges events both ways", async () => {
    const { socket } = await clients.connect(server.url, POLLING);
    assert.equal(socket.io.engine.transport.name, "polling");
    const backs = record(socket, "message-back");
    for (let i = 0; i < 5; i++) socket.emit("message", i);
    await until(backs, 5);
    assert.deepEqual(backs, [[0], [1], [2], [3], [4]]);
    assert.deepEqual(await call(socket, "message-with-ack", "poll"), ["poll"]);
    assert.equal(socket.io.engine.transport.name, "polling");
  });

  test("default: starts on polling, then upgrades to websocket", async () => {
    const socket = clients.open(server.url, UPGRADE);
    const upgraded = once(socket.io, "open").then(() => {
      assert.equal(socket.io.engine.transport.name, "polling");
      return once(socket.io.engine, "upgrade");
    });
    socket.connect();
    await once(socket, "connect");
    const [transport] = await upgraded;
    assert.equal(transport.name, "websocket");
    assert.equal(socket.io.engine.transport.name, "websocket");
    assert.deepEqual(await call(socket, "message-with-ack", "after upgrade"), ["after upgrade"]);
    const [back] = await Promise.all([once(socket, "message-back"), socket.emit("message", "x")]);
    assert.deepEqual(back, ["x"]);
  });

  test("default: events sent during the upgrade arrive once each, in order", async () => {
    const socket = clients.open(server.url, UPGRADE);
    const backs = record(socket, "message-back");
    const upgraded = once(socket.io, "open").then(() => once(socket.io.engine, "upgrade"));
    socket.connect();
    await once(socket, "connect");
    // Start sending while still on polling and keep going until the upgrade is done.
    let sent = 0;
    let done = false;
    upgraded.then(() => (done = true), () => (done = true));
    while (!done && sent < 5_000) {
      socket.emit("message", sent++);
      await new Promise((r) => setTimeout(r, 1));
    }
    for (let i = 0; i < 50; i++) socket.emit("message", sent++);
    await upgraded;
    assert.equal(socket.io.engine.transport.name, "websocket");
    await until(backs, sent);
    assert.deepEqual(
      backs.map(([n]) => n),
      Array.from({ length: sent }, (_, i) => i),
    );
  });
});

for (const mode of TRANSPORT_MODES) {
  describe(`transport (${mode.name})`, () => {
    test(`the connected client is on ${mode.final}`, async () => {
      const { socket } = await clients.connect(server.url, mode);
      assert.equal(socket.io.engine.transport.name, mode.final);
      assert.deepEqual(await call(socket, "message-with-ack", 1), [1]);
    });
  });
}
