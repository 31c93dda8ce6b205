// Connection state recovery on ONE `switchboard serve` node (the default memory
// adapter, `[recovery] enabled = true`) with the official `socket.io-client`, on
// WebSocket and on long-polling at once: the README's promise — every missed event, in
// order, exactly once, or `socket.recovered === false` and no event from before the
// reconnect.
//
// Each client receives event 0 (so it holds an offset); its connection is closed with
// `socket.io.engine.close()` (as a network failure would: the server keeps the session),
// and the test waits until the server no longer lists the socket; events are published
// with `POST /api/v1/emit` meanwhile; the client reconnects (`socket.connect()`, which
// sends its `pid` and last offset). One more event is published after the reconnect:
// once it arrived, anything replayed had arrived before it.
//
// - back in time: `recovered: true`, the same socket id, exactly the missed events, in
//   order, then the live one;
// - away longer than `recovery.max_disconnection_duration` (1 s here): `recovered:
//   false`, a new socket, and only the live event;
// - kicked by an operator (`POST /api/v1/sockets/disconnect` with `close: true`): the
//   client hears `io server disconnect`, and connecting again gives `recovered: false`
//   and none of the events sent since (the kick is not undone by recovery).

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Clients, connected } from "../lib/client.mjs";
import {
  connectClient,
  dropConnection,
  eventNumbers,
  startServeNode,
  trackEvents,
} from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";
import { POLLING, WEBSOCKET } from "../cluster/support.mjs";

const clients = new Clients();
let server = null;

afterEach(async () => {
  clients.closeAll();
  const s = server;
  server = null;
  await s?.stop();
});

/** One node, memory adapter, recovery on with `window` as `max_disconnection_duration`. */
async function serve(window) {
  server = await startServeNode({
    name: "single",
    adapter: "memory",
    recovery: { max_disconnection_duration: window },
  });
  return server;
}

/**
 * A client per transport, each having received event 0, then dropped: the server no
 * longer lists it. Returns `{ mode, socket, id, got, mark }` per client.
 */
async function awayClients(node) {
  const out = [];
  for (const mode of [WEBSOCKET, POLLING]) {
    const socket = await connectClient(clients, node.url, mode);
    out.push({ mode: mode.name, socket, id: socket.id, got: trackEvents(socket, "news"), mark: 0 });
  }
  await node.emit("news", [{ n: 0 }]);
  await untilAllGot(out, 0);
  for (const c of out) await dropConnection(c.socket, node);
  return out;
}

async function untilAllGot(out, n) {
  await waitFor(() => out.every((c) => eventNumbers(c.got).includes(n)), {
    what: `every client to receive event ${n}`,
  });
}

async function publish(node, from, to) {
  for (let n = from; n <= to; n++) await node.emit("news", [{ n }]);
}

/** Reconnects every client, then publishes `next` and waits until each received it. */
async function comeBack(node, out, next) {
  for (const c of out) {
    c.mark = c.got.length;
    c.socket.connect();
  }
  await Promise.all(out.map((c) => connected(c.socket)));
  await node.emit("news", [{ n: next }]);
  await untilAllGot(out, next);
}

describe("recovery on one `switchboard serve` node (memory adapter)", () => {
  test("a client back within max_disconnection_duration gets recovered: true and exactly the missed events, in order", async () => {
    const node = await serve("1m");
    const out = await awayClients(node);
    await publish(node, 1, 5);
    await comeBack(node, out, 6);
    for (const c of out) {
      assert.equal(c.socket.recovered, true, `${c.mode}: socket.recovered`);
      assert.equal(c.socket.id, c.id, `${c.mode}: a recovered socket keeps its id`);
      assert.deepEqual(eventNumbers(c.got.slice(0, c.mark)), [0], `${c.mode}: nothing arrived while away`);
      assert.deepEqual(
        eventNumbers(c.got.slice(c.mark)),
        [1, 2, 3, 4, 5, 6],
        `${c.mode}: the missed events once, in order, then the live one`,
      );
    }
  });

  test("a client away longer than max_disconnection_duration gets recovered: false and none of the old events", async () => {
    const node = await serve("1s");
    const out = await awayClients(node);
    await publish(node, 1, 2);
    // Being away longer than the window is the scenario itself, not a wait for a result.
    await sleep(2_000);
    await publish(node, 3, 4);
    await comeBack(node, out, 5);
    for (const c of out) {
      assert.equal(c.socket.recovered, false, `${c.mode}: socket.recovered`);
      assert.notEqual(c.socket.id, c.id, `${c.mode}: a socket that was not recovered is a new one`);
      assert.deepEqual(eventNumbers(c.got.slice(0, c.mark)), [0], `${c.mode}: nothing arrived while away`);
      assert.deepEqual(eventNumbers(c.got.slice(c.mark)), [5], `${c.mode}: no event from before the reconnect`);
    }
  });

  test("a client an operator disconnected with close: true is not recovered when it connects again", async () => {
    const node = await serve("1m");
    const out = [];
    for (const mode of [WEBSOCKET, POLLING]) {
      const socket = await connectClient(clients, node.url, mode);
      const reasons = [];
      socket.on("disconnect", (reason) => reasons.push(reason));
      out.push({ mode: mode.name, socket, id: socket.id, got: trackEvents(socket, "news"), mark: 0, reasons });
    }
    await node.emit("news", [{ n: 0 }]);
    await untilAllGot(out, 0);
    const res = await node.api("POST", "/api/v1/sockets/disconnect", {
      socket_ids: out.map((c) => c.id),
      close: true,
    });
    assert.deepEqual(res.body, { affected: 2 });
    await waitFor(() => out.every((c) => c.reasons.length > 0), { what: "both clients to be disconnected" });
    for (const c of out) {
      // A kick, as Node's disconnect(true): the client does not reconnect by itself.
      assert.deepEqual(c.reasons, ["io server disconnect"], `${c.mode}: the reason the client heard`);
    }
    await publish(node, 1, 2);
    await comeBack(node, out, 3);
    for (const c of out) {
      assert.equal(c.socket.recovered, false, `${c.mode}: socket.recovered`);
      assert.notEqual(c.socket.id, c.id, `${c.mode}: a new socket`);
      assert.deepEqual(eventNumbers(c.got.slice(c.mark)), [3], `${c.mode}: no event from while it was kicked out`);
    }
  });
});
