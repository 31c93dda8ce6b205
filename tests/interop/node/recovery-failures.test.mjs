// The README's recovery guarantee on its failure paths, against the shipped binary: a
// client that reconnects gets every event it missed, in order, exactly once — or
// `socket.recovered === false` and no event at all from before the reconnect. "Never a
// silent gap."
//
// Each test starts its own redis-server and two `switchboard serve` nodes
// (`cluster.adapter = "redis-streams"`, `[recovery] enabled = true`, the HTTP API on)
// behind HAProxy (lib/serve-cluster.mjs), and two official `socket.io-client`s, one on
// WebSocket and one on long-polling. Both land on node 1 and receive event 0 (so they
// hold an offset); their connections are closed (`socket.io.engine.close()`, a drop the
// server keeps the session for) and the cluster sees them gone; events are published
// with `POST /api/v1/emit` while they are away; then the fault, and they reconnect
// through the balancer to node 2. Every failure test ends the same way: each client is
// told `recovered: false` (a new socket id), one more event is published, and once it
// arrived — a replay would have come before it — the client has received nothing else
// since the reconnect.
//
// - success anchor: no fault; the replay is read from the Redis stream (node 2 keeps one
//   event in memory), every missed event once, in order;
// - the client's offset trimmed out of the stream (`cluster.stream_max_len`);
// - away longer than `recovery.max_disconnection_duration`;
// - Redis restarted without its data;
// - Redis unreachable longer than the 5 s a reconnecting node waits: frozen (SIGSTOP),
//   and stopped (connection refused);
// - the emitting node's stream write queue (100 000 writes, not configurable) overflowing
//   while Redis is down: a relayed event's sender is acknowledged `{ok: true}` only once
//   Redis holds it, and told `{error: "cluster unavailable"}` for one the full queue
//   dropped, which then reaches no one;
// - and the success path the short-window tests exposed: a client whose node was
//   SIGKILLed, back within `max_disconnection_duration`.

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { Clients, call, connected, once } from "../lib/client.mjs";
import {
  connectClient,
  dropConnection,
  eventNumbers,
  startServeCluster,
  trackEvents,
} from "../lib/serve-cluster.mjs";
import { freeze, waitFor } from "../lib/wait.mjs";
import { startRedis } from "../cluster/redis.mjs";
import { POLLING, WEBSOCKET } from "../cluster/support.mjs";

/** Long enough never to expire during a test (except where a test shortens it). */
const WINDOW = "1m";
/** The stream write queue of `crates/cluster/src/streams.rs` (`MAX_PENDING_WRITES`). */
const MAX_PENDING_WRITES = 100_000;
/**
 * Safety net for a reconnect that the node answers only after its 5 s wait for Redis
 * (twice that, for a loaded machine); never an assertion on speed.
 */
const SLOW_CONNECT_MS = 10_000;

/** What a test started; stopped after it, clients first, Redis last. */
let running = null;

afterEach(async () => {
  const env = running;
  running = null;
  if (!env) return;
  env.clients.closeAll();
  try {
    await env.redisUp();
    await env.cluster?.stop();
  } finally {
    await env.redis.close();
  }
});

/**
 * A redis-server and a two-node cluster for one test; `config` holds extra keys of the
 * nodes' `[cluster]` and `[recovery]` tables and `extra` TOML (see `serveConfig`).
 */
async function setUp({ cluster = {}, recovery = {}, extra = "" } = {}) {
  const redis = await startRedis();
  const env = {
    redis,
    cluster: null,
    clients: new Clients(),
    /** Puts Redis back if a test left it stopped or frozen. */
    async redisUp() {
      if (!redis.child) await redis.start();
      else process.kill(redis.child.pid, "SIGCONT");
    },
  };
  running = env;
  env.cluster = await startServeCluster({
    redisUrl: redis.url,
    config: { cluster, recovery: { max_disconnection_duration: WINDOW, ...recovery }, extra },
  });
  const [first, second] = env.cluster.nodes;
  return { env, first, second };
}

/**
 * One client per transport through the balancer, routed to `node`; each has received
 * event 0 (published on `node`), so it holds an offset. `join` rooms first, through the
 * namespace rules' join event, when the test configured rules.
 */
async function connectPair(env, node, { join = [] } = {}) {
  await env.cluster.routeTo(node);
  const out = [];
  for (const mode of [WEBSOCKET, POLLING]) {
    const socket = await connectClient(env.clients, env.cluster.url, mode);
    for (const room of join) assert.deepEqual(await call(socket, "join", room), [{ ok: true }]);
    out.push({ mode: mode.name, socket, got: trackEvents(socket, "news"), id: socket.id, mark: 0 });
  }
  assert.equal(await node.localSockets(), out.length, `the clients landed on ${node.name}`);
  await node.emit("news", [{ n: 0 }]);
  await untilAllGot(out, 0);
  return out;
}

/**
 * Waits until every client received event `n`, for at most `timeout` ms (a safety net,
 * not a measure).
 */
async function untilAllGot(clients, n, timeout = undefined) {
  await waitFor(() => clients.every((c) => eventNumbers(c.got).includes(n)), {
    timeout,
    what: `every client to receive event ${n}`,
  });
}

/**
 * Closes each client's connection (its node stays up, as in a network failure) and
 * waits until the cluster, asked on `node`, no longer lists it: its session was saved.
 */
async function dropAll(clients, node) {
  for (const c of clients) await dropConnection(c.socket, node);
}

/** Publishes events `from`..`to` to every socket of `/` on `node`. */
async function publish(node, from, to) {
  for (let n = from; n <= to; n++) await node.emit("news", [{ n }]);
}

/**
 * Reconnects every client (all at once) through the balancer, routed to `node`, and
 * checks that they are connected there. `ms` bounds the wait (a safety net).
 */
async function comeBack(env, clients, node, ms) {
  await env.cluster.routeTo(node);
  for (const c of clients) {
    c.mark = c.got.length;
    c.socket.connect();
  }
  await Promise.all(clients.map((c) => connected(c.socket, ms)));
  assert.equal(await node.localSockets(), clients.length, `the clients came back on ${node.name}`);
}

/**
 * The failure outcome: every client told `recovered: false` (a new socket), and, once
 * event `next` (published now on `node`) arrived, nothing else received since the
 * reconnect: no event from before it.
 */
async function assertNotRecovered(clients, node, next) {
  for (const c of clients) {
    assert.equal(c.socket.recovered, false, `${c.mode}: socket.recovered`);
    assert.notEqual(c.socket.id, c.id, `${c.mode}: a socket that was not recovered is a new one`);
  }
  await node.emit("news", [{ n: next }]);
  await untilAllGot(clients, next);
  for (const c of clients) {
    assert.deepEqual(eventNumbers(c.got.slice(0, c.mark)), [0], `${c.mode}: nothing arrived while away`);
    assert.deepEqual(eventNumbers(c.got.slice(c.mark)), [next], `${c.mode}: no event from before the reconnect`);
  }
}

/** Kills redis-server and starts it again on its port with no data: a Redis without persistence. */
async function restartRedisEmpty(redis) {
  await redis.kill();
  rmSync(join(redis.dir, "appendonlydir"), { recursive: true, force: true });
  await redis.start();
}

describe("recovery across `switchboard serve` nodes (redis-streams)", () => {
  test("success anchor: a client away from node 1 resumes on node 2 with every missed event, read back from the stream", async () => {
    // One event in node 2's memory, so the replay is read from the Redis stream, as in
    // the trimmed-offset test below.
    const { env, first, second } = await setUp({ recovery: { max_buffered_packets: 1 } });
    const clients = await connectPair(env, first);
    await dropAll(clients, first);
    await publish(second, 1, 30);
    await comeBack(env, clients, second);
    await second.emit("news", [{ n: 31 }]);
    await untilAllGot(clients, 31);
    const all = [...Array(32).keys()];
    for (const c of clients) {
      assert.equal(c.socket.recovered, true, `${c.mode}: socket.recovered`);
      assert.equal(c.socket.id, c.id, `${c.mode}: a recovered socket keeps its id`);
      assert.deepEqual(eventNumbers(c.got), all, `${c.mode}: every event once, in order`);
    }
  });

  test("the client's offset trimmed out of the stream: recovered false on another node, no old event", async () => {
    const { env, first, second } = await setUp({
      cluster: { stream_max_len: 10 },
      recovery: { max_buffered_packets: 1 },
    });
    const redis = new Redis(env.redis.url);
    try {
      // Small stream nodes, so `XADD MAXLEN ~ 10` trims close to 10 entries.
      await redis.config("SET", "stream-node-max-entries", "5");
      const clients = await connectPair(env, first);
      await dropAll(clients, first);
      await publish(second, 1, 30);
      for (const c of clients) {
        const offset = c.got[0].offset;
        assert.ok(offset, `${c.mode}: event 0 carried an offset`);
        const kept = await redis.xrange("socket.io", offset, offset);
        assert.deepEqual(kept, [], `${c.mode}: its offset ${offset} was trimmed out of the stream`);
      }
      await comeBack(env, clients, second);
      await assertNotRecovered(clients, second, 31);
    } finally {
      redis.disconnect();
    }
  });

  test("away longer than max_disconnection_duration: recovered false on another node, no old event", async () => {
    const { env, first, second } = await setUp({ recovery: { max_disconnection_duration: "2s" } });
    const clients = await connectPair(env, first);
    await dropAll(clients, first);
    await publish(second, 1, 2);
    // Being away longer than the window is the scenario itself, not a wait for a result.
    await sleep(3_000);
    await publish(second, 3, 4);
    await comeBack(env, clients, second);
    await assertNotRecovered(clients, second, 5);
  });

  test("Redis restarted without its data while the client was away: recovered false, no old event", async () => {
    const { env, first, second } = await setUp();
    const clients = await connectPair(env, first);
    await dropAll(clients, first);
    await publish(second, 1, 3);
    await restartRedisEmpty(env.redis);
    await env.cluster.waitUntilReady();
    await comeBack(env, clients, second);
    await assertNotRecovered(clients, second, 4);
  });

  test("Redis frozen (SIGSTOP) longer than the 5 s the reconnecting node waits: recovered false, no old event", async () => {
    const { env, first, second } = await setUp();
    const clients = await connectPair(env, first);
    await dropAll(clients, first);
    await publish(second, 1, 3);
    await freeze(env.redis.child.pid);
    try {
      // Answered while Redis is still frozen, after the node's wait for it.
      await comeBack(env, clients, second, SLOW_CONNECT_MS);
    } finally {
      process.kill(env.redis.child.pid, "SIGCONT");
    }
    await env.cluster.waitUntilReady();
    await assertNotRecovered(clients, second, 4);
  });

  test(
    "Redis stopped (connection refused) longer than the 5 s the reconnecting node waits: recovered false, no old event",
    async () => {
      const { env, first, second } = await setUp();
      const clients = await connectPair(env, first);
      await dropAll(clients, first);
      await publish(second, 1, 3);
      await env.redis.stop();
      try {
        await comeBack(env, clients, second, SLOW_CONNECT_MS).catch((err) => {
          throw new Error(
            `the reconnect was not answered while Redis was down (README: a reconnecting ` +
              `client waits up to 5 s, then is told recovered: false): ${err.message}`,
          );
        });
      } finally {
        await env.redis.start();
      }
      await env.cluster.waitUntilReady();
      await assertNotRecovered(clients, second, 4);
    },
  );

  test(
    "the emitting node's stream write queue overflowing while Redis is down: never a silent gap, never a false ack",
    async () => {
      // Relaying needs namespace rules. Each relayed `filler` event is a stream write;
      // `join` and `leave` each save the socket's session, but a save made while the
      // same session's last one still waits replaces it (one place in the queue), so a
      // join/leave loop cannot fill the queue and drop other clients' writes.
      const rules = `
[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["news", "filler"]
[[namespaces.events]]
name = "news"
action = "relay"
[[namespaces.events]]
name = "filler"
action = "relay"
`;
      // The flood's entries reach the stream once Redis is back: room for them, so the
      // events queued before the flood are still in the stream for the replay.
      const { env, first, second } = await setUp({ extra: rules, cluster: { stream_max_len: 250_000 } });
      const clients = await connectPair(env, first, { join: ["news"] });
      // The publisher, on node 1 directly, on long-polling: its packets travel in
      // batches, much cheaper than 100 000 WebSocket frames.
      const publisher = await connectClient(env.clients, first.url, POLLING);
      assert.deepEqual(await call(publisher, "join", "news"), [{ ok: true }]);
      const relay = (n) => call(publisher, "news", "news", { n });
      // A relay's acknowledgement waits until Redis holds the event: these two are
      // answered only after Redis is back (the safety net covers the flood below).
      const relayQueued = (n) =>
        new Promise((resolve, reject) =>
          publisher.timeout(180_000).emit("news", "news", { n }, (err, ...res) =>
            err ? reject(new Error(`no ack for relay ${n}`)) : resolve(res),
          ),
        );
      await dropAll(clients, first);

      await env.redis.stop();
      const queued = [relayQueued(1), relayQueued(2)];
      const dropped = async () =>
        (await first.metrics()).get("switchboard_cluster_publish_dropped_total") ?? 0;
      const droppedBefore = await dropped();
      // Session saves of one socket wait as one write: a loop of joins and leaves as
      // long as the queue drops nothing (handled in order: once the last one is
      // answered, every one before it was handled).
      for (let i = 0; i < MAX_PENDING_WRITES + 1_000; i++) publisher.emit(i % 2 ? "leave" : "join", "filler");
      assert.deepEqual(await call(publisher, "join", "filler"), [{ ok: true }]);
      assert.equal(await dropped(), droppedBefore, "a join/leave loop fills no queue");
      // Stream entries are one write each: these fill it.
      for (let i = 0; i < MAX_PENDING_WRITES + 1_000; i++) publisher.emit("filler", "filler", i);
      await waitFor(async () => (await dropped()) > droppedBefore, {
        timeout: 60_000,
        what: "node 1 to drop stream writes (its queue full)",
      });
      // Handled after the flood, so their writes find the queue full: refused to the
      // sender at once, and delivered to no one.
      const refusedAcks = [await relay(3), await relay(4)];
      assert.deepEqual(
        refusedAcks,
        [[{ error: "cluster unavailable" }], [{ error: "cluster unavailable" }]],
        "events 3 and 4 were dropped, and their sender is told so",
      );
      const refused = await first.api("POST", "/api/v1/emit", {
        event: "news",
        args: ["news", { n: 99 }],
        rooms: ["news"],
      });
      assert.equal(refused.status, 503, "an API emit is refused while the queue is full");
      assert.equal(refused.body.code, "cluster_unavailable");

      await env.redis.start();
      assert.deepEqual(
        await Promise.all(queued),
        [[{ ok: true }], [{ ok: true }]],
        "events 1 and 2, queued while Redis was away, are acknowledged once Redis holds them",
      );
      // A 200 means Redis holds this event and everything queued before it; 503 while
      // the queue is still full (then it was not published, and is retried).
      await waitFor(
        async () =>
          (await first.api("POST", "/api/v1/emit", { event: "news", args: ["news", { n: 5 }], rooms: ["news"] }))
            .status === 200,
        { timeout: 60_000, interval: 200, what: "node 1 to write its queue to Redis" },
      );
      await comeBack(env, clients, second);
      assert.deepEqual(await relay(6), [{ ok: true }]);
      // Node 2 reads event 6 after the flood's 101,000 entries, which reached the
      // stream once Redis was back: about 7 s in a debug build on two cores (measured
      // 2026-12-06), over the default safety net when the machine is busy.
      await untilAllGot(clients, 6, 60_000);
      // Recovered (the stream has room for the flood, so the events queued before it are
      // still there for the replay): every acknowledged event once, in order, none of
      // the refused ones.
      for (const c of clients) {
        assert.equal(c.socket.recovered, true, `${c.mode}: socket.recovered`);
        assert.equal(c.socket.id, c.id, `${c.mode}: a recovered socket keeps its id`);
        assert.deepEqual(eventNumbers(c.got.slice(c.mark)), [1, 2, 5, 6], `${c.mode}: every acknowledged event once, in order`);
        assert.deepEqual(eventNumbers(c.got), [0, 1, 2, 5, 6], `${c.mode}: nothing while away`);
      }
    },
  );

  test("a node frozen while the stream was trimmed past what it had read closes its clients, who come back with every event (never a silent gap)", async () => {
    // A stream of about 10 entries: thirty events while node 2 is frozen trim it past
    // event 0, the last node 2 read. Before, node 2 woke up, read on from what was
    // left, and its clients got the last few events and never knew of the others.
    const { env, first, second } = await setUp({ cluster: { stream_max_len: 10 } });
    const redis = new Redis(env.redis.url);
    try {
      await redis.config("SET", "stream-node-max-entries", "5");
      const clients = await connectPair(env, second);
      for (const c of clients) c.socket.once("disconnect", (reason) => (c.dropped = reason));
      const pid = second.server.pid;
      process.kill(pid, "SIGSTOP");
      try {
        await publish(first, 1, 30);
        const offset = clients[0].got[0].offset;
        assert.deepEqual(await redis.xrange("socket.io", offset, offset), [], "event 0 was trimmed");
        // Frozen longer than a read's block (2 s) and the stall margin (2 s).
        await sleep(5_000);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      await waitFor(() => clients.every((c) => c.dropped), {
        what: "node 2 to close its clients' connections once it found the gap",
      }).catch((err) => {
        const got = clients.map((c) => `${c.mode}: ${JSON.stringify(eventNumbers(c.got))}`);
        throw new Error(`${err.message}; events: ${got.join(", ")}`);
      });
      for (const c of clients) {
        assert.equal(c.dropped, "transport close", `${c.mode}: its connection was closed`);
        assert.deepEqual(eventNumbers(c.got), [0], `${c.mode}: nothing from node 2 after the gap`);
      }
      // Not ready until it reads the stream fresh again (its next read finds nothing
      // new within 2 s), so a balancer sends the closed clients elsewhere meanwhile.
      assert.equal(await second.server.status("/health/ready"), 503, "node 2 is behind");
      await waitFor(async () => (await second.server.status("/health/ready")) === 200, {
        what: "node 2 to be ready again",
      });
      // They come back through the balancer to node 1, which read every event.
      // Reconnecting as a client with reconnection on would (these have it off).
      await comeBack(env, clients, first);
      await first.emit("news", [{ n: 31 }]);
      await untilAllGot(clients, 31);
      for (const c of clients) {
        assert.equal(c.socket.recovered, true, `${c.mode}: recovered from node 1's memory`);
        assert.deepEqual(eventNumbers(c.got), [...Array(32).keys()], `${c.mode}: every event once, in order`);
      }
      const gaps = (await second.metrics()).get("switchboard_cluster_stream_gaps_total");
      // Once or twice: the batch that followed the trim, and perhaps the next (the
      // first batch held the event just after event 0, read before the trim reached it).
      assert.ok(gaps >= 1, `node 2 counted the gap (${gaps})`);
    } finally {
      redis.disconnect();
    }
  });

  test(
    "a client whose node was SIGKILLed, back on another node within max_disconnection_duration (3 s), is recovered",
    async () => {
      const { env, first, second } = await setUp({ recovery: { max_disconnection_duration: "3s" } });
      const clients = await connectPair(env, first);
      // Connected longer than the window (the scenario: an ordinary client does).
      await sleep(4_000);
      const gone = clients.map((c) => once(c.socket, "disconnect"));
      await first.kill();
      await Promise.all(gone);
      await publish(second, 1, 3);
      await comeBack(env, clients, second);
      await second.emit("news", [{ n: 4 }]);
      await untilAllGot(clients, 4);
      for (const c of clients) {
        assert.equal(c.socket.recovered, true, `${c.mode}: socket.recovered`);
        assert.deepEqual(eventNumbers(c.got), [0, 1, 2, 3, 4], `${c.mode}: every event once, in order`);
      }
    },
  );
});
