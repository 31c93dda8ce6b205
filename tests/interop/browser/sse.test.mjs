// Server-Sent Events in headless Chromium: the browser's own `EventSource`, on a page
// served from another origin than the server (so every SSE request is a CORS request),
// against the shipped `switchboard serve` with `[sse]` and `[recovery]` on.
//
// 1. The stream carries, in order and with their arguments as a JSON array, events the
//    HTTP API emits to the listener's room and events an official Socket.IO client (the
//    browser bundle, on another page) relays to that room; events for a room it did not
//    ask for, or that are not named events, never reach it.
// 2. The server ends the stream (`POST /api/v1/sockets/disconnect` of the SSE socket);
//    the EventSource reconnects by itself with `Last-Event-ID` (the test holds that
//    request until the events it must miss are published, so they are surely missed),
//    is told `{"recovered":true}` and gets exactly the missed events, once each, in
//    order, then live ones.
// 3. The same EventSource behind HAProxy (round-robin) in front of two nodes on one
//    Redis (redis-streams): the node holding it is SIGKILLed while the API publishes
//    numbered events through both nodes; it reconnects by itself to the survivor and
//    ends with every acknowledged event exactly once, in order.
//
// Any uncaught exception or console error in a page fails the test.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startRedis } from "../cluster/redis.mjs";
import { startServeCluster, startTickPublisher } from "../lib/serve-cluster.mjs";
import { startSwitchboard } from "../lib/switchboard.mjs";
import { waitFor } from "../lib/wait.mjs";
import { CHROMIUM, CHROMIUM_ARGS, startSite } from "./harness.mjs";

const API_KEY = "sse-browser-tests-key-0123456789";

/** `retry` of the stream: how long the EventSource waits before it reconnects. */
const RETRY_MS = 500;

const CONFIG = `
[sse]
enabled = true
path = "/sse"
retry = "${RETRY_MS}ms"

[recovery]
enabled = true

[api]
keys = ["${API_KEY}"]
rate_limit_per_second = 0

[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["news", "sports", "resume"]
[[namespaces.events]]
name = "msg"
action = "relay"
`;

/**
 * The page: the official bundle (for the relaying client) and a recorder around one
 * `EventSource`. Everything the stream delivers is kept in `window.sse.log`, in order:
 * `open` and `error` of the EventSource, each named event (`addEventListener`) with its
 * data and `lastEventId`, and anything `onmessage` receives (the server names every
 * event, so nothing should).
 */
const PAGE = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Switchboard interop: EventSource</title>
<script src="/socket.io.min.js"></script>
<script>
"use strict";
window.sse = {
  es: null,
  log: [],
  listen(url, names) {
    const es = new EventSource(url);
    this.es = es;
    es.onopen = () => this.log.push({ kind: "open" });
    es.onerror = () => this.log.push({ kind: "error", readyState: es.readyState });
    es.onmessage = (e) => this.log.push({ kind: "message", data: e.data, id: e.lastEventId });
    for (const name of names) {
      es.addEventListener(name, (e) =>
        this.log.push({ kind: "event", type: e.type, data: e.data, id: e.lastEventId }),
      );
    }
  },
  close() {
    this.es?.close();
  },
};
window.relay = {
  socket: null,
  // Connects the official client and joins \`room\`; resolves with the join's ack.
  async connect(url, room) {
    const socket = io(url, { forceNew: true, reconnection: false });
    this.socket = socket;
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error("connect_error: " + err.message)));
    });
    return socket.timeout(10000).emitWithAck("join", room);
  },
  // Emits with an acknowledgement; resolves with its first argument.
  send(event, ...args) {
    return this.socket.timeout(10000).emitWithAck(event, ...args);
  },
  close() {
    this.socket?.disconnect();
  },
};
</script>
</head>
<body></body>
</html>
`;

let server;
let site;
let siteUrl;
let browser;
const contexts = [];
const pageErrors = [];

before(async () => {
  server = await startSwitchboard({ config: CONFIG });
  site = await startSite({ page: PAGE });
  siteUrl = `http://127.0.0.1:${site.address().port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  site?.close();
  // A crash of the server fails the file (stop() throws unless it exits cleanly).
  await server?.stop();
});

afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], `page errors: ${errors.join(" | ")}`);
});

async function openPage() {
  const ctx = await browser.newContext();
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(`${msg.text()} (${msg.location().url})`);
  });
  await page.goto(siteUrl);
  return page;
}

/** `POST /api/v1/emit` to `rooms`; resolves with the answer, which must be 200. */
async function emit(rooms, event, args) {
  const res = await server.api(API_KEY, "POST", "/api/v1/emit", { namespace: "/", rooms, event, args });
  assert.equal(res.status, 200, `emit ${event}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** The SSE sockets of `/` whose handshake query has `listener=tag`. */
async function sseSockets(tag) {
  const res = await server.api(API_KEY, "GET", "/api/v1/namespaces/%2F/sockets");
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.sockets.filter(
    (s) => s.handshake?.transport === "sse" && s.handshake?.query?.listener === tag,
  );
}

/** The page's log (see `PAGE`). */
const log = (page) => page.evaluate(() => window.sse.log);
const named = (entries) => entries.filter((e) => e.kind === "event");

/** Waits until the page's log holds `n` named events of type `type`; resolves with the log. */
async function untilEvents(page, type, n, what) {
  try {
    return await waitFor(
      async () => {
        const entries = await log(page);
        return named(entries).filter((e) => e.type === type).length >= n && entries;
      },
      { what },
    );
  } catch (err) {
    throw new Error(`${err.message}\npage log: ${JSON.stringify(await log(page))}`);
  }
}

/**
 * The counter of an event id (one node, memory adapter: `<epoch>-<counter in hex>`).
 */
const seq = (id) => Number.parseInt(id.slice(id.lastIndexOf("-") + 1), 16);

/** Asserts that `ids` are present, of one epoch, and strictly increasing. */
function assertIncreasingIds(ids, what) {
  for (const id of ids) assert.match(id, /^\S+-[0-9a-f]+$/, `${what}: every event has an id`);
  const epochs = new Set(ids.map((id) => id.slice(0, id.lastIndexOf("-"))));
  assert.equal(epochs.size, 1, `${what}: one epoch (${[...epochs]})`);
  for (let i = 1; i < ids.length; i++) {
    assert.ok(seq(ids[i]) > seq(ids[i - 1]), `${what}: ids increase (${ids[i - 1]} then ${ids[i]})`);
  }
}

describe("EventSource in Chromium (switchboard serve, [sse] + [recovery])", () => {
  test("a page on another origin reads /sse through CORS", async () => {
    const page = await openPage();
    const origin = await page.evaluate(() => location.origin);
    assert.notEqual(origin, new URL(server.url).origin, "the page is on another origin");
    // A cross-origin fetch (mode "cors") rejects unless the answer's CORS headers let the
    // page read it; the page reads the stream's head, then lets it go.
    const url = `${server.url}/sse?nsp=%2F&listener=cors`;
    const answered = page.waitForResponse((res) => res.url() === url);
    const read = await page.evaluate(async (url) => {
      const abort = new AbortController();
      const res = await fetch(url, { signal: abort.signal });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let text = "";
      while (!text.includes("\n\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      abort.abort();
      return { type: res.type, status: res.status, contentType: res.headers.get("content-type"), text };
    }, url);
    assert.equal(read.type, "cors", "read as a CORS response");
    assert.equal(read.status, 200);
    assert.match(read.contentType, /^text\/event-stream/);
    assert.match(read.text, new RegExp(`^retry: ${RETRY_MS}\n`), "the stream's head is readable");
    const headers = (await answered).headers();
    // CONFIG leaves cors.allowed_origins at its default, "*" (no credentials).
    assert.equal(headers["access-control-allow-origin"], "*", "the server allows any origin");
    // The server lets the aborted listener go.
    await waitFor(async () => (await sseSockets("cors")).length === 0, {
      what: "the aborted SSE listener to be gone",
    });
  });

  test("API emits to the room and a socket.io-client's relays to it arrive in order, args as JSON", async () => {
    const listenerPage = await openPage();
    const senderPage = await openPage();
    const url = `${server.url}/sse?nsp=%2F&room=news&listener=order`;
    await listenerPage.evaluate(
      ([url]) => window.sse.listen(url, ["headline", "msg", "switchboard:recovery", "switchboard:close"]),
      [url],
    );
    await waitFor(async () => (await sseSockets("order")).length === 1, {
      what: "the SSE listener to be connected",
    });
    const [listener] = await sseSockets("order");
    assert.deepEqual(listener.rooms.sort(), [listener.id, "news"].sort(), "the listener joined ?room=news");
    assert.deepEqual(
      await senderPage.evaluate(([url]) => window.relay.connect(url, "news"), [server.url]),
      { ok: true },
      "the Socket.IO sender joins news",
    );
    const relay = async (...args) =>
      assert.deepEqual(
        await senderPage.evaluate((args) => window.relay.send("msg", ...args), args),
        { ok: true },
        "the relay is acknowledged",
      );

    // Each step waits for the previous one's acknowledgement: that is the order the
    // stream must keep. Strings with quotes, unicode and a line break exercise the data
    // line (JSON escapes the break, so it stays one line).
    const expected = [];
    const api = async (event, args) => {
      assert.equal((await emit(["news"], event, args)).recipients, 2, "the listener and the sender");
      expected.push({ type: event, args });
    };
    const relayed = async (...args) => {
      await relay("news", ...args);
      expected.push({ type: "msg", args: ["news", ...args] });
    };
    await api("headline", [{ n: 1, text: 'héllo "world"\nsecond line ✓' }]);
    await relayed({ n: 2, from: "browser" });
    await api("headline", [{ n: 3 }, "plain", 42, null, [true, false], { nested: { deep: [1.5] } }]);
    await relayed({ n: 4 }, "extra argument", 7);
    // Not for the listener: another room (nobody there), and an event for the sender
    // alone. Both are published before the last expected event, so they would have
    // arrived before it.
    assert.equal((await emit(["sports"], "headline", [{ n: 5, wrong: "room" }])).recipients, 0);
    const sender = (await server.api(API_KEY, "GET", "/api/v1/namespaces/%2F/sockets")).body.sockets.find(
      (s) => s.handshake.transport !== "sse",
    );
    assert.ok(sender, "the relaying client is listed");
    const direct = await server.api(API_KEY, "POST", "/api/v1/emit", {
      socket_ids: [sender.id],
      event: "headline",
      args: [{ n: 6, wrong: "socket" }],
    });
    assert.equal(direct.status, 200);
    await relayed({ n: 7 });
    await api("headline", [{ n: 8, last: true }]);

    const entries = await untilEvents(listenerPage, "headline", 3, "the last API emit to reach the page");
    await untilEvents(listenerPage, "msg", 3, "the last relay to reach the page");
    const events = named(await log(listenerPage));
    assert.deepEqual(
      events.map((e) => ({ type: e.type, args: JSON.parse(e.data) })),
      expected,
      "every event once, in order, with its arguments",
    );
    assertIncreasingIds(
      events.map((e) => e.id),
      "recovery on",
    );
    assert.deepEqual(
      entries.filter((e) => e.kind !== "event"),
      [{ kind: "open" }],
      "one open, no error, nothing unnamed (onmessage)",
    );
    await senderPage.evaluate(() => window.relay.close());
    await listenerPage.evaluate(() => window.sse.close());
  });

  test("after the server ends the stream, EventSource reconnects with Last-Event-ID and gets exactly the missed events", async () => {
    const page = await openPage();
    // The EventSource's reconnects (every /sse request after the first) are held here
    // until the test lets them through, so that the events published meanwhile are
    // surely missed (no race with `retry`). Playwright does not show the Last-Event-ID
    // header Chromium adds; the server's view of the handshake does.
    const requests = [];
    let release;
    const gate = new Promise((r) => (release = r));
    await page.route(
      (u) => u.pathname === "/sse",
      async (route) => {
        requests.push(route.request().method());
        if (requests.length > 1) await gate;
        await route.continue();
      },
    );
    const url = `${server.url}/sse?room=resume&listener=resume`;
    await page.evaluate(
      ([url]) => window.sse.listen(url, ["headline", "switchboard:recovery", "switchboard:close"]),
      [url],
    );
    await waitFor(async () => (await sseSockets("resume")).length === 1, {
      what: "the SSE listener to be connected",
    });
    const [first] = await sseSockets("resume");
    const numbered = (n) => [{ n, at: "headline" }];

    for (let n = 1; n <= 3; n++) assert.equal((await emit(["resume"], "headline", numbered(n))).recipients, 1);
    const before = named(await untilEvents(page, "headline", 3, "events 1-3 live"));
    const lastBefore = before.at(-1).id;

    // The server ends it: the socket leaves the namespace, the stream says why and ends.
    const disconnect = await server.api(API_KEY, "POST", "/api/v1/sockets/disconnect", {
      socket_ids: [first.id],
    });
    assert.deepEqual(disconnect, { status: 200, body: { affected: 1 } });
    await untilEvents(page, "switchboard:close", 1, "the close notice");
    // The EventSource reconnects by itself, with the id of the last event it got.
    await waitFor(() => requests.length === 2, { what: "the EventSource to reconnect" });
    assert.deepEqual(await sseSockets("resume"), [], "the listener is away while its reconnect is held");

    // Missed: nobody receives them live.
    for (let n = 4; n <= 8; n++) assert.equal((await emit(["resume"], "headline", numbered(n))).recipients, 0);
    release();
    await untilEvents(page, "headline", 8, "the missed events after the reconnect");
    const [second] = await waitFor(
      async () => {
        const found = await sseSockets("resume");
        return found.length === 1 && found;
      },
      { what: "the listener back" },
    );
    assert.notEqual(second.id, first.id, "a new SSE socket");
    assert.equal(
      second.handshake.headers["last-event-id"],
      lastBefore,
      "the EventSource reconnected with Last-Event-ID = the id of the last event it got",
    );
    assert.equal(first.handshake.headers["last-event-id"], undefined, "the first request had none");
    // Live again after the replay.
    for (let n = 9; n <= 10; n++) assert.equal((await emit(["resume"], "headline", numbered(n))).recipients, 1);
    const entries = await untilEvents(page, "headline", 10, "events 9-10 live after the replay");

    const events = named(entries);
    assert.deepEqual(
      events.map((e) => [e.type, JSON.parse(e.data)]),
      [
        ...[1, 2, 3].map((n) => ["headline", numbered(n)]),
        ["switchboard:close", { reason: "server namespace disconnect" }],
        ["switchboard:recovery", { recovered: true, replayed: 5 }],
        ...[4, 5, 6, 7, 8, 9, 10].map((n) => ["headline", numbered(n)]),
      ],
      "every event exactly once, in order, the missed ones replayed",
    );
    assertIncreasingIds(
      events.filter((e) => e.type === "headline").map((e) => e.id),
      "across the reconnect",
    );
    // EventSource: open, then error (the stream ended, readyState CONNECTING), then open.
    assert.deepEqual(
      entries.filter((e) => e.kind !== "event"),
      [{ kind: "open" }, { kind: "error", readyState: 0 }, { kind: "open" }],
      "one reconnect by the EventSource itself, nothing unnamed",
    );
    assert.deepEqual(requests, ["GET", "GET"], "a single reconnect");
    await page.evaluate(() => window.sse.close());
  });
});

describe("EventSource in Chromium behind HAProxy, two nodes (redis-streams), one SIGKILLed", () => {
  const RULES = `
[sse]
enabled = true
retry = "${RETRY_MS}ms"

[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["ticks"]
`;
  let redis;
  let cluster;
  before(async () => {
    redis = await startRedis();
    cluster = await startServeCluster({ redisUrl: redis.url, nodes: 2, config: { extra: RULES } });
  });
  after(async () => {
    try {
      await cluster?.stop();
    } finally {
      await redis?.close();
    }
  });

  test("it reconnects through HAProxy with Last-Event-ID and gets every acknowledged event once, in order", async () => {
    const page = await openPage();
    const ticks = async () =>
      named(await log(page))
        .filter((e) => e.type === "tick")
        .map((e) => JSON.parse(e.data)[0].n);
    await page.evaluate(
      ([url]) => window.sse.listen(url, ["tick", "switchboard:recovery", "switchboard:close"]),
      [`${cluster.url}/sse?room=ticks`],
    );
    // The node holding the listener: the one with a socket (its own metrics).
    const holding = async () => {
      const out = [];
      for (const node of cluster.nodes.filter((n) => n.running)) {
        if ((await node.localSockets()) > 0) out.push(node);
      }
      return out;
    };
    const [holder] = await waitFor(
      async () => {
        const found = await holding();
        return found.length === 1 && found;
      },
      { what: "one node to hold the listener" },
    );
    const survivor = cluster.nodes.find((n) => n !== holder);

    // Numbered ticks alternately through each node directly, each awaited before the
    // next; only a 200 counts as published.
    const publisher = startTickPublisher(cluster.nodes, { everyMs: 5 });
    const { acked, failed } = publisher;
    const explain = async () => `page log: ${JSON.stringify(await log(page))}`;
    try {
      await waitFor(async () => (await ticks()).length >= 20, { what: "20 ticks live before the kill" });
      await holder.kill();
      const killedAt = publisher.last();
      await waitFor(async () => (await ticks()).filter((x) => x > killedAt).length >= 20, {
        timeout: 20_000,
        what: "the EventSource to reconnect and get 20 ticks published after the kill",
      }).catch(async (err) => {
        throw new Error(`${err.message}\n${await explain()}`);
      });
      await publisher.stop();
      const last = acked.at(-1);
      await waitFor(async () => (await ticks()).includes(last), { what: `the last acknowledged tick (${last})` });

      const got = await ticks();
      for (let i = 1; i < got.length; i++) {
        assert.ok(got[i] > got[i - 1], `in order, once each: ${got[i - 1]} then ${got[i]}\n${await explain()}`);
      }
      const gotSet = new Set(got);
      assert.deepEqual(
        acked.filter((x) => !gotSet.has(x)),
        [],
        `acknowledged ticks missing\n${await explain()}`,
      );
      assert.ok(failed.every((f) => f.node === holder.name), `only the killed node failed: ${JSON.stringify(failed)}`);
      const entries = await log(page);
      // The kill ended the stream (an error with readyState CONNECTING, never CLOSED:
      // the EventSource kept reconnecting) and every reconnect was recovered.
      const states = entries.filter((e) => e.kind !== "event");
      assert.ok(
        states.every((e) => e.kind === "open" || (e.kind === "error" && e.readyState === 0)),
        `the EventSource never gave up: ${JSON.stringify(states)}`,
      );
      assert.equal(states.at(-1).kind, "open", "open again");
      const reports = named(entries)
        .filter((e) => e.type === "switchboard:recovery")
        .map((e) => JSON.parse(e.data));
      assert.ok(reports.length >= 1, "the reconnect presented Last-Event-ID");
      assert.ok(reports.every((r) => r.recovered === true), `recovered: ${JSON.stringify(reports)}`);
      assert.deepEqual(await holding(), [survivor], "the listener is on the survivor");
      // The kill cut the first stream mid-response: Chromium reports exactly that once
      // (expected here, so it is not one of the page errors that fail a test).
      const cut = `net::ERR_INCOMPLETE_CHUNKED_ENCODING (${cluster.url}/sse?room=ticks)`;
      const cuts = pageErrors.filter((e) => e.endsWith(cut));
      assert.equal(cuts.length, 1, `the cut stream reported once: ${pageErrors.join(" | ")}`);
      pageErrors.splice(pageErrors.indexOf(cuts[0]), 1);
      console.log(
        `  ${acked.length} ticks acknowledged, ${failed.length} publishes failed, ` +
          `${states.filter((e) => e.kind === "open").length - 1} reconnect(s), replayed ${reports.map((r) => r.replayed)}`,
      );
    } finally {
      await publisher.stop();
      await page.evaluate(() => window.sse.close());
    }
  });
});
