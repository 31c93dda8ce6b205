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
    // The client probes websocket as soon as the engine opens, so the upgrade may finish
    // before (or in the same read as) the server's CONNECT answer: then nothing would be
    // sent on polling and the test would prove nothing. Such a run is retried on a new
    // client, a bounded number of times.
    const ATTEMPTS = 20;
    let last;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      last = await sendThroughUpgrade();
      if (last.onPolling > 0) break;
      clients.closeAll();
    }
    assert.ok(
      last.onPolling > 0,
      `the upgrade beat "connect" in each of ${ATTEMPTS} attempts: no event was sent on polling`,
    );
    // Connected before the upgrade started, so the burst on `upgrading` was sent while the
    // polling transport was paused (they go out on websocket once it takes over).
    assert.ok(last.whileUpgrading > 0, "no event was emitted while the upgrade was under way");
    const { socket, backs, sent } = last;
    assert.equal(socket.io.engine.transport.name, "websocket");
    await until(backs, sent);
    assert.deepEqual(
      backs.map(([n]) => n),
      Array.from({ length: sent }, (_, i) => i),
    );
    // Anything duplicated after the last expected one has arrived by now.
    assert.deepEqual(await call(socket, "message-with-ack", "barrier"), ["barrier"]);
    assert.equal(backs.length, sent);
  });
});

/**
 * Connects a default (polling, then websocket) client and emits numbered `message`s from
 * `connect` until after the upgrade: a burst in the `connect` handler itself (the read
 * that carried the CONNECT answer may also complete the upgrade before an awaiting
 * caller runs), one on the engine's `upgrading` (polling paused, the events wait for the
 * new transport), and one every millisecond in between. `onPolling` counts those the
 * connected socket handed to the polling transport, `whileUpgrading` those it emitted
 * while polling was being paused for the upgrade.
 */
async function sendThroughUpgrade() {
  const socket = clients.open(server.url, UPGRADE);
  const backs = record(socket, "message-back");
  const state = { socket, backs, sent: 0, onPolling: 0, whileUpgrading: 0 };
  const emit = (n) => {
    for (let i = 0; i < n; i++) {
      const engine = socket.io.engine;
      if (socket.connected && engine.transport.name === "polling") {
        if (engine.upgrading) state.whileUpgrading++;
        else state.onPolling++;
      }
      socket.emit("message", state.sent++);
    }
  };
  const upgraded = once(socket.io, "open").then(() => {
    socket.io.engine.once("upgrading", () => emit(20));
    return once(socket.io.engine, "upgrade");
  });
  let done = false;
  upgraded.then(
    () => (done = true),
    () => (done = true),
  );
  socket.once("connect", () => emit(20));
  socket.connect();
  await once(socket, "connect");
  while (!done && state.sent < 5_000) {
    emit(1);
    await new Promise((r) => setTimeout(r, 1));
  }
  emit(50);
  await upgraded;
  return state;
}

for (const mode of TRANSPORT_MODES) {
  describe(`transport (${mode.name})`, () => {
    test(`the connected client is on ${mode.final}`, async () => {
      const { socket } = await clients.connect(server.url, mode);
      assert.equal(socket.io.engine.transport.name, mode.final);
      assert.deepEqual(await call(socket, "message-with-ack", 1), [1]);
    });
  });
}
