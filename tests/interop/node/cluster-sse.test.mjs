// Server-Sent Events across a cluster: two `switchboard serve` nodes on one redis-server
// (`cluster.adapter = "redis-streams"`, `[recovery]` on, so every event's id is its
// Redis stream id and any node can replay after it), HAProxy round-robin in front.
//
// The listener is a reconnecting SSE client written here on `fetch`, as an
// `EventSource` behaves (WHATWG HTML §9.2): it parses the stream, keeps the last event
// id, and when the stream ends or the connection breaks it waits `retry` and asks again
// with `Last-Event-ID`; an answer that is not a 200 `text/event-stream` ends it for good.
//
// 1. Through HAProxy, while the HTTP API publishes numbered events to the listener's
//    room alternately through both nodes directly, the node holding the listener is
//    SIGKILLed; the listener reconnects through HAProxy (to the survivor) and ends
//    with every acknowledged event exactly once, in order: no gap, no duplicate.
// 2. After a clean API disconnect on one node, the listener reconnects with its
//    Last-Event-ID to the other node directly and gets the missed events from the
//    stream; again after that node restarted, so its memory holds none of them and the
//    replay is read from Redis.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startRedis } from "../cluster/redis.mjs";
import { startServeCluster, startTickPublisher } from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";

const RETRY_MS = 300;

/** `[sse]` and the rooms and events of `/`, on every node. */
const RULES = `
[sse]
enabled = true
retry = "${RETRY_MS}ms"
heartbeat = "2s"

[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["ticks", "resume", "window"]
`;

/** Events before the kill, and after the reconnect, that the listener must receive live. */
const LIVE_BEFORE = 25;
const LIVE_AFTER = 25;
const PUBLISH_EVERY_MS = 5;

// ------------------------------------------------------------------ the SSE client

/**
 * A reconnecting SSE client. `url()` gives the URL of each attempt (the same through a
 * balancer, or another node). `events` holds every dispatched event `{ type, data, id,
 * conn }`; `connections` every attempt `{ url, lastEventId (sent), status, sid (from
 * `: connected`), recovery (the `switchboard:recovery` data), end }`. With
 * `reconnect: false` it stops after the first stream; `resume(url)` starts again with
 * the last event id.
 */
class SseListener {
  constructor(url, { reconnect = true } = {}) {
    this.url = typeof url === "function" ? url : () => url;
    this.reconnect = reconnect;
    this.retryMs = 3000; // EventSource's default until the stream sets `retry`
    this.lastEventId = "";
    this.events = [];
    this.connections = [];
    this.closed = false;
    this.controller = null;
    this.running = this.#run();
  }

  /** Stops for good: aborts the current request; resolves once the loop ended. */
  async close() {
    this.closed = true;
    this.controller?.abort();
    await this.running;
  }

  /** Starts again (after `reconnect: false` ended it) on `url`, with the last id. */
  resume(url) {
    this.url = () => url;
    this.running = this.#run();
  }

  /** The current (last) attempt. */
  get current() {
    return this.connections.at(-1);
  }

  /** Data of the events named `type`, parsed. */
  dataOf(type) {
    return this.events.filter((e) => e.type === type).map((e) => JSON.parse(e.data));
  }

  async #run() {
    for (;;) {
      if (this.closed) return;
      const conn = {
        url: this.url(),
        lastEventId: this.lastEventId || null,
        status: null,
        sid: null,
        recovery: null,
        end: null,
      };
      this.connections.push(conn);
      this.controller = new AbortController();
      const headers = { accept: "text/event-stream", "cache-control": "no-cache" };
      if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
      try {
        const res = await fetch(conn.url, { headers, signal: this.controller.signal });
        conn.status = res.status;
        const type = res.headers.get("content-type") ?? "";
        if (res.status !== 200 || !type.startsWith("text/event-stream")) {
          // EventSource "fails the connection": no reconnect.
          conn.end = `refused: ${res.status} ${type} ${await res.text()}`;
          return;
        }
        await this.#read(res.body, conn);
        conn.end = "end of stream";
      } catch (err) {
        conn.end = `network error: ${err.cause?.code ?? err.cause?.message ?? err.message}`;
      }
      if (this.closed || !this.reconnect) return;
      await sleep(this.retryMs);
    }
  }

  /** Reads a stream, line by line, as the WHATWG event stream interpretation does. */
  async #read(body, conn) {
    const decoder = new TextDecoder();
    let buffer = "";
    let type = "";
    let data = [];
    let idBuffer = this.lastEventId;
    const line = (text) => {
      if (text === "") {
        // Dispatch: the last event id is set even if there is no data.
        this.lastEventId = idBuffer;
        if (data.length > 0) {
          const event = { type: type || "message", data: data.join("\n"), id: this.lastEventId, conn };
          this.events.push(event);
          if (event.type === "switchboard:recovery") conn.recovery = JSON.parse(event.data);
        }
        type = "";
        data = [];
        return;
      }
      if (text.startsWith(":")) {
        const connected = /^: ?connected (\S+)/.exec(text);
        if (connected) conn.sid = connected[1];
        return;
      }
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) idBuffer = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    };
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      for (;;) {
        const m = /\r\n|\n|\r/.exec(buffer);
        // A lone CR at the end may be the first half of a CRLF.
        if (!m || (m[0] === "\r" && m.index === buffer.length - 1)) break;
        line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
      }
    }
  }
}

// ------------------------------------------------------------------ helpers

/** The numbers of the `tick` events received, in order. */
const ticks = (listener) => listener.dataOf("tick").map((args) => args[0].n);

/** A Redis stream id `ms-seq` as a BigInt pair, for comparisons. */
function streamId(id) {
  const m = /^(\d+)-(\d+)$/.exec(id ?? "");
  assert.ok(m, `a Redis stream id: ${id}`);
  return [BigInt(m[1]), BigInt(m[2])];
}

/** Asserts the `tick` events' ids are Redis stream ids, strictly increasing. */
function assertIncreasingIds(listener) {
  const ids = listener.events.filter((e) => e.type === "tick").map((e) => e.id);
  for (let i = 1; i < ids.length; i++) {
    const [a, b] = [streamId(ids[i - 1]), streamId(ids[i])];
    assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]), `ids increase: ${ids[i - 1]} then ${ids[i]}`);
  }
}

/** The nodes holding an SSE socket of `/` right now (from each node's own metrics). */
async function holders(nodes) {
  const out = [];
  for (const node of nodes.filter((n) => n.running)) {
    if ((await node.localSockets()) > 0) out.push(node);
  }
  return out;
}

/**
 * How many times Redis ran each command that reads a stream's entries by range (from
 * `INFO commandstats`; the XREAD of the nodes' live readers is left out).
 */
async function streamReads(redis) {
  const stats = String(await redis.command("INFO", "commandstats"));
  const calls = (name) => Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, "m").exec(stats)?.[1] ?? 0);
  return { xrange: calls("xrange"), xrevrange: calls("xrevrange") };
}

/** What a listener did, to explain a failure. */
function explain(listener) {
  const conns = listener.connections.map((c) => ({ ...c }));
  return `connections: ${JSON.stringify(conns)}\nticks: ${JSON.stringify(ticks(listener))}`;
}

// ------------------------------------------------------------------ the tests

describe("SSE listeners across two switchboard serve nodes (redis-streams, recovery)", () => {
  let redis;
  let cluster;
  const listeners = [];

  before(async () => {
    redis = await startRedis();
    cluster = await startServeCluster({ redisUrl: redis.url, nodes: 2, config: { extra: RULES } });
  });

  after(async () => {
    for (const l of listeners) await l.close();
    try {
      await cluster?.stop();
    } finally {
      await redis?.close();
    }
  });

  test("clean API disconnect on one node, Last-Event-ID to the other node directly: the missed events are replayed from the stream", async () => {
    const [a, b] = cluster.nodes;
    const numbers = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const publish = async (node, n) => {
      await node.emit("tick", [{ n }], { rooms: ["resume"] });
    };
    const listener = new SseListener(`${a.url}/sse?room=resume`, { reconnect: false });
    listeners.push(listener);
    const until = (n, what) =>
      waitFor(() => ticks(listener).includes(n), { what }).catch((err) => {
        throw new Error(`${err.message}\n${explain(listener)}`);
      });
    try {
      await waitFor(() => listener.current?.sid, { what: "the listener's stream to open" });
      assert.deepEqual(await holders(cluster.nodes), [a], "the listener is on node a");

      // Live, published through both nodes.
      for (const n of numbers(1, 5)) await publish(n % 2 ? a : b, n);
      await until(5, "events 1-5 live");
      const lastLive = listener.lastEventId;

      // A clean end, asked on the other node: the stream says why and ends.
      const first = listener.current;
      const res = await b.api("POST", "/api/v1/sockets/disconnect", { socket_ids: [first.sid] });
      assert.deepEqual(res, { status: 200, body: { affected: 1 } });
      await listener.running;
      assert.equal(first.end, "end of stream");
      assert.equal(listener.events.at(-1).type, "switchboard:close");
      assert.deepEqual(JSON.parse(listener.events.at(-1).data), { reason: "server namespace disconnect" });
      await b.waitUntilGone(first.sid);

      // Missed, published through both nodes; then Last-Event-ID to node b directly,
      // once node b has read them all from the stream (a witness on node b received
      // them). Node b replays what it has read when the listener arrives and delivers
      // the rest live after it: without the wait, its reader lagging by a few
      // milliseconds moved events from the replay to the live part (in order, once
      // each, but `replayed` then counted fewer than 5).
      const witness = new SseListener(`${b.url}/sse?room=resume`, { reconnect: false });
      listeners.push(witness);
      await waitFor(() => witness.current?.sid, { what: "the witness's stream on node b to open" });
      for (const n of numbers(6, 10)) await publish(n % 2 ? a : b, n);
      await waitFor(() => ticks(witness).includes(10), { what: "node b to deliver event 10" });
      assert.deepEqual(ticks(witness), numbers(6, 10), "the witness on node b got the missed events");
      const witnessSid = witness.current.sid;
      await witness.close();
      await b.waitUntilGone(witnessSid);
      listener.resume(`${b.url}/sse?room=resume`);
      await until(10, "the missed events 6-10 from node b");
      assert.deepEqual(await holders(cluster.nodes), [b], "the listener is on node b");
      const second = listener.current;
      assert.equal(second.lastEventId, lastLive);
      assert.deepEqual(second.recovery, { recovered: true, replayed: 5 });
      for (const n of numbers(11, 12)) await publish(n % 2 ? a : b, n);
      await until(12, "events 11-12 live on node b");
      assert.deepEqual(ticks(listener), numbers(1, 12), explain(listener));

      // Again, but node b restarts while the listener is away: its memory holds none of
      // the missed events, which it must read from the Redis stream.
      const res2 = await a.api("POST", "/api/v1/sockets/disconnect", { socket_ids: [second.sid] });
      assert.deepEqual(res2, { status: 200, body: { affected: 1 } });
      await listener.running;
      assert.equal(second.end, "end of stream");
      const lastBeforeRestart = listener.lastEventId;
      await b.stop();
      for (const n of numbers(13, 17)) await publish(a, n);
      await b.start();
      listener.resume(`${b.url}/sse?room=resume`);
      await until(17, "the missed events 13-17 from the restarted node b");
      const third = listener.current;
      assert.equal(third.lastEventId, lastBeforeRestart);
      assert.deepEqual(third.recovery, { recovered: true, replayed: 5 });
      for (const n of numbers(18, 19)) await publish(n % 2 ? a : b, n);
      await until(19, "events 18-19 live on the restarted node b");
      assert.deepEqual(ticks(listener), numbers(1, 19), explain(listener));
      assertIncreasingIds(listener);
      assert.deepEqual(
        listener.dataOf("switchboard:close"),
        [{ reason: "server namespace disconnect" }, { reason: "server namespace disconnect" }],
      );
      assert.equal(third.end, null, "the stream from the restarted node is still open");
    } finally {
      await listener.close();
      // Node b back for the next test, had this one failed while it was down.
      if (!b.running) await b.start();
    }
  });

  test("a Last-Event-ID of 0-0, older than the recovery window or from the future replays nothing and reads nothing from the stream", async () => {
    const [a, b] = cluster.nodes;
    // Events in the stream for the room, before any listener asks; then node b
    // restarts, so its buffer holds none of them and a replay of them would be read
    // from the stream. (An old id that a node's buffer still covers is replayed from
    // the buffer, with no read.)
    for (const n of [1, 2, 3]) await a.emit("tick", [{ n }], { rooms: ["window"] });
    await b.stop();
    await b.start();
    const hour = 3_600_000;
    const cases = [
      // Without the window, `0-0` read the whole stream and replayed these three.
      ["0-0", "event id no longer available"],
      [`${Date.now() - hour}-0`, "event id no longer available"],
      [`${Date.now() + hour}-0`, "unknown event id"],
    ];
    for (const [k, [id, reason]] of cases.entries()) {
      // A replay reads the stream with XREVRANGE (where it ends) and XRANGE (what is
      // missed); the live reader only ever uses XREAD.
      const readsBefore = await streamReads(redis);
      const listener = new SseListener(`${b.url}/sse?room=window&lastEventId=${id}`, { reconnect: false });
      listeners.push(listener);
      try {
        await waitFor(() => listener.current?.recovery, { what: `the answer to Last-Event-ID ${id}` }).catch((err) => {
          throw new Error(`${err.message}\n${explain(listener)}`);
        });
        assert.deepEqual(listener.current.recovery, { recovered: false, reason }, id);
        // One live event: whatever a replay would have sent came before it.
        const live = 100 + k;
        await a.emit("tick", [{ n: live }], { rooms: ["window"] });
        await waitFor(() => ticks(listener).includes(live), { what: `the live event ${live}` }).catch((err) => {
          throw new Error(`${err.message}\n${explain(listener)}`);
        });
        assert.deepEqual(ticks(listener), [live], `${id}: nothing replayed, then the live event\n${explain(listener)}`);
        assert.deepEqual(await streamReads(redis), readsBefore, `${id}: nothing read from the stream`);
      } finally {
        await listener.close();
      }
    }
  });

  test("SIGKILL of the listener's node: it reconnects through HAProxy with Last-Event-ID and gets every acknowledged event once, in order", async () => {
    const [a, b] = cluster.nodes;
    for (const node of cluster.nodes) await cluster.lb.waitUntil(node.port, true);
    await waitFor(async () => (await holders(cluster.nodes)).length === 0, {
      what: "no listener left from the previous test",
    });
    const listener = new SseListener(`${cluster.url}/sse?room=ticks`);
    listeners.push(listener);
    await waitFor(() => listener.current?.sid, { what: "the listener's stream to open" });
    const [holder] = await waitFor(
      async () => {
        const found = await holders(cluster.nodes);
        return found.length === 1 && found;
      },
      { what: "exactly one node to hold the listener" },
    );
    const survivor = holder === a ? b : a;
    assert.equal(await holder.hasSocket(listener.current.sid), true);

    // The publisher: numbered `tick`s to the room, alternately through each node
    // directly, each awaited before the next (so the stream's order is the numbers').
    // Only an answer of 200 counts as published; a request to the killed node fails.
    const publisher = startTickPublisher(cluster.nodes, { everyMs: PUBLISH_EVERY_MS });
    const { acked, failed } = publisher;

    try {
      await waitFor(() => ticks(listener).length >= LIVE_BEFORE, {
        what: `${LIVE_BEFORE} events live before the kill`,
      });
      assert.equal(listener.connections.length, 1, "no reconnect before the kill");
      const lastBefore = listener.lastEventId;
      await holder.kill();
      const killedAt = publisher.last();
      // Publishing goes on (through the survivor; the killed node's share fails). The
      // listener reconnects through HAProxy by itself and must get past the kill.
      await waitFor(
        () => {
          const got = ticks(listener);
          return listener.connections.length > 1 && got.filter((x) => x > killedAt).length >= LIVE_AFTER;
        },
        { timeout: 20_000, what: `the listener to reconnect and get ${LIVE_AFTER} events published after the kill` },
      ).catch((err) => {
        throw new Error(`${err.message}\n${explain(listener)}`);
      });
      await publisher.stop();
      const last = acked.at(-1);
      await waitFor(() => ticks(listener).includes(last), {
        what: `the last acknowledged event (${last})`,
      }).catch((err) => {
        throw new Error(`${err.message}\n${explain(listener)}`);
      });

      const got = ticks(listener);
      // In order, no duplicate.
      for (let i = 1; i < got.length; i++) {
        assert.ok(got[i] > got[i - 1], `in order, once each: ${got[i - 1]} then ${got[i]}\n${explain(listener)}`);
      }
      // No gap: every acknowledged event arrived. (An event whose publish failed when
      // the node died may or may not be in the stream; if it arrived it is in order.)
      const gotSet = new Set(got);
      const missing = acked.filter((x) => !gotSet.has(x));
      assert.deepEqual(missing, [], `acknowledged events missing\n${explain(listener)}`);
      const ackedSet = new Set(acked);
      const unacked = got.filter((x) => !ackedSet.has(x));
      const attempted = new Set(failed.map((f) => f.n));
      assert.deepEqual(
        unacked.filter((x) => !attempted.has(x)),
        [],
        "nothing arrives that was not published",
      );
      assertIncreasingIds(listener);
      assert.ok(
        failed.every((f) => f.node === holder.name),
        `only publishes to the killed node failed: ${JSON.stringify(failed)}`,
      );

      // How it got there: every reconnect carried the last id received, was answered
      // (no refusal, which would have stopped an EventSource), and was recovered; the
      // one that stayed is on the survivor.
      const [first, ...again] = listener.connections;
      assert.equal(first.lastEventId, null);
      assert.match(first.end, /network error|end of stream/, "the kill ended the first stream");
      const lastOfFirst = listener.events.filter((e) => e.conn === first).at(-1).id;
      assert.ok(lastOfFirst && streamId(lastOfFirst)[0] >= streamId(lastBefore)[0]);
      assert.equal(again[0].lastEventId, lastOfFirst, "the reconnect sends the last id received");
      for (const conn of again) {
        assert.equal(conn.status, 200, `reconnect answered 200\n${explain(listener)}`);
        assert.ok(conn.lastEventId, "every reconnect sends Last-Event-ID");
        assert.deepEqual(
          { recovered: conn.recovery?.recovered },
          { recovered: true },
          `recovered: ${JSON.stringify(conn.recovery)}`,
        );
      }
      const final = listener.current;
      assert.equal(final.end, null, "the last stream is still open");
      assert.equal(await survivor.hasSocket(final.sid), true);
      assert.deepEqual(await holders(cluster.nodes), [survivor]);
      const replayed = again.reduce((sum, c) => sum + (c.recovery?.replayed ?? 0), 0);
      console.log(
        `  ${acked.length} events acknowledged, ${failed.length} publishes failed (killed node), ` +
          `${got.length} received, ${again.length} reconnect(s), ${replayed} replayed`,
      );
    } finally {
      await publisher.stop();
      await listener.close();
    }
  });
});
