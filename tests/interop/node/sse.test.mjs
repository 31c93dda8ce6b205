// Server-Sent Events (`GET /sse`) end to end against the shipped `switchboard serve`
// binary: real SSE listeners (`fetch` + the WHATWG parser of lib/sse.mjs, and a raw TCP
// reader that stops reading) beside official `socket.io-client`s, events published with
// the HTTP API or relayed by clients, and what the server shows from outside (the API's
// socket listings, lifecycle webhooks to a `node:http` receiver, `/metrics`).
//
// Each test starts its own server with the config it needs and stops it afterwards (a
// server that does not exit cleanly on SIGTERM fails the test). Waits are bounded
// safety nets, never assertions on speed; "not delivered" is shown by a later event
// that was delivered, never by sleeping.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createConnection } from "node:net";
import { afterEach, describe, it } from "node:test";
import { Clients, TRANSPORT_MODES, WAIT_MS, connected, hs256, until } from "../lib/client.mjs";
import { openSse, parseSse, SseParser } from "../lib/sse.mjs";
import { startSwitchboard } from "../lib/switchboard.mjs";
import { waitFor } from "../lib/wait.mjs";

const API_KEY = "sse-tests-api-key-0123456789";
/** HS256 key of the namespaces that require a token (at least 32 bytes). */
const JWT_SECRET = "sse-tests-jwt-secret-0123456789abcdef";
const WEBHOOK_SECRET = "sse-tests-webhook-secret";

const [WEBSOCKET, POLLING] = TRANSPORT_MODES;

const SSE_GAUGE = 'switchboard_connections{transport="sse"}';
const SLOW_CONSUMERS = 'switchboard_disconnects_total{category="slow_consumer",reason="slow consumer"}';

// ------------------------------------------------------------------ what a test opened

const clients = new Clients();
const streams = [];
const rawSockets = [];
const servers = [];
const receivers = [];

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  for (const s of rawSockets.splice(0)) s.destroy();
  clients.closeAll();
  // Every server must exit cleanly (status 0 on SIGTERM): a crash fails the test.
  const stopped = await Promise.allSettled(servers.splice(0).map((s) => s.stop()));
  for (const r of receivers.splice(0)) {
    r.closeAllConnections();
    await new Promise((resolve) => r.close(resolve));
  }
  for (const r of stopped) if (r.status === "rejected") throw r.reason;
});

// --------------------------------------------------------------------------- helpers

/** A TOML table from an object of plain values (strings, numbers, booleans, arrays). */
function table(name, keys) {
  return [`[${name}]`, ...Object.entries(keys).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)].join("\n");
}

/**
 * Starts `switchboard serve` with the HTTP API on (`API_KEY`, no rate limit) and the
 * given TOML parts, `[[namespaces]]` entries last.
 */
async function serve(...parts) {
  const config = [table("api", { keys: [API_KEY], rate_limit_per_second: 0 }), ...parts].join("\n\n");
  const server = await startSwitchboard({ config: `${config}\n` });
  servers.push(server);
  return server;
}

/** `/sse?…`: `rooms` as repeated `room` parameters, every other key as one parameter. */
function sseUrl(server, { rooms = [], ...params } = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) q.append(k, v);
  for (const r of rooms) q.append("room", r);
  const query = q.toString();
  return `${server.url}/sse${query ? `?${query}` : ""}`;
}

/** Opens an SSE request (whatever the answer); closed after the test. */
async function listen(server, params = {}, { headers = {}, method } = {}) {
  const stream = await openSse(sseUrl(server, params), { headers, method });
  streams.push(stream);
  return stream;
}

/**
 * An accepted SSE listener: asserts the 200, waits for the `: connected <id>` comment
 * and sets `stream.sid` to that socket id.
 */
async function listener(server, params = {}, opts = {}) {
  const stream = await listen(server, params, opts);
  assert.equal(stream.status, 200, `SSE request refused: ${stream.status} ${JSON.stringify(stream.body)}`);
  const comment = await stream.waitForComment((c) => c.startsWith("connected "), {
    what: "the `: connected <id>` comment",
  });
  stream.sid = comment.slice("connected ".length);
  return stream;
}

/** The refusal of an SSE request: `{ status, body, headers }`, asserting it is not a stream. */
async function refusal(server, params = {}, opts = {}) {
  const stream = await listen(server, params, opts);
  assert.equal(stream.ok, false, `expected a refusal, got an event stream for ${JSON.stringify(params)}`);
  return { status: stream.status, body: stream.body, headers: stream.headers };
}

/** `POST /api/v1/emit`; throws unless it is 200 (a refused publish is never mistaken for one). */
async function emit(server, body) {
  const res = await server.api(API_KEY, "POST", "/api/v1/emit", body);
  assert.equal(res.status, 200, `emit ${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Every socket of namespace `ns` the API lists (one page is plenty here). */
async function listSockets(server, ns = "/") {
  const res = await server.api(API_KEY, "GET", `/api/v1/namespaces/${encodeURIComponent(ns)}/sockets?limit=1000`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.sockets;
}

/** An official client of `url` on `mode`, connected and in `rooms`; closed after the test. */
async function ioClient(url, mode, rooms = []) {
  // Not `clients.connect`: its wait for an "auth" event leaves a 10 s timer behind.
  const socket = clients.open(url, mode);
  socket.connect();
  await connected(socket);
  for (const room of rooms) {
    const res = await socket.timeout(WAIT_MS).emitWithAck("join", room);
    assert.deepEqual(res, { ok: true }, `join ${room}`);
  }
  return socket;
}

/** Records every event `socket` receives from now on, as `[name, ...args]`. */
function recordAll(socket) {
  const seen = [];
  socket.onAny((event, ...args) => seen.push([event, ...args]));
  return seen;
}

/** An SSE event as `[name, ...args]` (its data is the JSON array of the arguments). */
const asCall = (e) => [e.event, ...JSON.parse(e.data)];

/** A compact HS256 JWT of `claims`, signed with `secret`. */
const jwt = (claims, secret = JWT_SECRET) => hs256(claims, secret);

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * A `node:http` receiver of lifecycle webhooks: `url` for `[hooks.webhook]`, `hooks`
 * the parsed bodies received so far (signatures are not checked here).
 */
async function webhookReceiver() {
  const hooks = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        hooks.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        // not ours to judge here
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  receivers.push(server);
  return { url: `http://127.0.0.1:${server.address().port}/hooks`, hooks };
}

/** The first hook of `type` about socket `sid`, waited for. */
function hookFor(receiver, type, sid) {
  return waitFor(() => receiver.hooks.find((h) => h.type === type && h.data?.socket_id === sid), {
    what: `a ${type} webhook for ${sid} (received: ${JSON.stringify(receiver.hooks.map((h) => [h.type, h.data?.socket_id]))})`,
  });
}

/**
 * An SSE request on a raw TCP connection that reads the response head up to the
 * `: connected <id>` comment, then never reads again (the kernel buffers fill, then
 * the server's queue). Resolves with `{ socket, sid, head }`.
 */
function stalledReader(server, path) {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port: server.port });
    rawSockets.push(socket);
    let head = "";
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`no SSE head within ${WAIT_MS} ms: ${JSON.stringify(head)}`)), WAIT_MS);
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    socket.on("error", fail); // after it resolved, a reset by the server is expected
    socket.on("connect", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    const onData = (chunk) => {
      head += chunk.toString("latin1");
      const m = /: connected (\S+)\n\n/.exec(head);
      if (!m) return;
      socket.off("data", onData);
      socket.pause(); // from now on nothing is read: Node stops reading once its buffer is full
      settled = true;
      clearTimeout(timer);
      resolve({ socket, sid: m[1], head });
    };
    socket.on("data", onData);
  });
}

/** `/` with rooms `news` and `sports` open to anyone. */
const ROOT_WITH_ROOMS = `
[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["news", "sports"]
`;

// ------------------------------------------------------------------------- the tests

describe("SSE listeners and socket.io-client sockets side by side", () => {
  it("API emits to a room reach an SSE listener and socket.io-clients in it alike (same events, same order), the recovery offsets as event ids", async () => {
    const server = await serve(table("sse", { enabled: true }), table("recovery", { enabled: true }), ROOT_WITH_ROOMS);
    const ws = await ioClient(server.url, WEBSOCKET, ["news"]);
    const poll = await ioClient(server.url, POLLING, ["news"]);
    const wsSeen = recordAll(ws);
    const pollSeen = recordAll(poll);
    const sse = await listener(server, { rooms: ["news"] });

    assert.equal(sse.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(sse.headers.get("cache-control"), "no-cache, no-transform");
    assert.equal(sse.headers.get("x-accel-buffering"), "no");
    assert.equal(sse.retry, 2000, "the stream starts with `retry: 2000` (sse.retry default 2s)");
    assert.deepEqual(sse.comments, [`connected ${sse.sid}`], "the first comment names the socket");

    // Events of several shapes: names, no argument, several, unicode, nested, numbers.
    const sent = [];
    for (let n = 0; n < 12; n++) {
      const args = [
        [{ n }],
        [],
        [`text ${n} — ✓ 🚀 "quoted" \\ back`, n, null, true],
        [{ n, nested: { list: [1, "two", { three: 3 }] } }, "last is a string"],
      ][n % 4];
      const event = n % 3 === 0 ? "headline" : "update";
      sent.push([event, ...args]);
      // A sports event (neither listener's room) between every two news events.
      await emit(server, { rooms: ["sports"], event: "headline", args: [{ sports: n }] });
      const res = await emit(server, { rooms: ["news"], event, args });
      assert.equal(res.recipients, 3, "the SSE listener counts as a recipient like the two sockets");
    }

    await until(wsSeen, sent.length);
    await until(pollSeen, sent.length);
    await sse.waitForEvents(sent.length);

    assert.deepEqual(sse.events.map(asCall), sent, "SSE: the room's events, in order, nothing else");
    for (const [name, seen] of [["websocket", wsSeen], ["polling", pollSeen]]) {
      assert.equal(seen.length, sent.length, `${name}: nothing else arrived`);
      for (const call of seen) assert.equal(typeof call.at(-1), "string", `${name}: every event carries its offset`);
      assert.deepEqual(
        seen.map((call) => call.slice(0, -1)),
        sent,
        `${name}: the same events in the same order as the SSE listener`,
      );
      assert.deepEqual(
        sse.events.map((e) => e.ownId),
        seen.map((call) => call.at(-1)),
        `${name}: each SSE event's id is the offset the socket received with it`,
      );
    }
    assert.equal(new Set(sse.events.map((e) => e.ownId)).size, sent.length, "ids are distinct");
    assert.equal(sse.lastEventId, sse.events.at(-1).ownId);
  });

  it("a binary event reaches socket.io-clients and is reported to SSE listeners as switchboard:skipped with its id; later events still arrive", async () => {
    const server = await serve(table("sse", { enabled: true }), table("recovery", { enabled: true }), ROOT_WITH_ROOMS);
    const ws = await ioClient(server.url, WEBSOCKET, ["news"]);
    const seen = recordAll(ws);
    const sse = await listener(server, { rooms: ["news"] });
    await emit(server, {
      rooms: ["news"],
      event: "file",
      args: ["report.bin"],
      binary_args: [{ index: 1, base64: Buffer.from([0, 1, 2, 255]).toString("base64") }],
    });
    await emit(server, { rooms: ["news"], event: "after", args: [{ ok: true }] });
    await until(seen, 2);
    await sse.waitForEvents(2);

    const [file, after] = seen;
    assert.equal(file[0], "file");
    assert.equal(file[1], "report.bin");
    assert.deepEqual([...new Uint8Array(file[2])], [0, 1, 2, 255], "the socket.io-client gets the bytes");
    assert.deepEqual(
      sse.events.map((e) => [e.event, JSON.parse(e.data)]),
      [
        ["switchboard:skipped", { event: "file", reason: "binary" }],
        ["after", [{ ok: true }]],
      ],
    );
    assert.deepEqual(
      sse.events.map((e) => e.ownId),
      [file.at(-1), after.at(-1)],
      "the skipped notice keeps the event's id, so a reconnect resumes after it",
    );
  });

  it("a chat message a socket.io-client relays to its room reaches the SSE listeners of that room only", async () => {
    const server = await serve(
      table("sse", { enabled: true }),
      `
[[namespaces]]
name = "/chat"
[namespaces.rooms]
allow = ["chat:*"]
[[namespaces.events]]
name = "message"
action = "relay"
`,
    );
    const alice = await ioClient(`${server.url}/chat`, WEBSOCKET, ["chat:1"]);
    const bob = await ioClient(`${server.url}/chat`, POLLING, ["chat:2"]);
    const room1 = await listener(server, { nsp: "/chat", rooms: ["chat:1"] });
    const room2 = await listener(server, { nsp: "/chat", rooms: ["chat:2"] });

    bob.emit("message", "chat:2", { from: "bob", text: "hello two" });
    await room2.waitForEvents(1);
    const sent = [];
    for (let i = 0; i < 5; i++) {
      const msg = { from: "alice", i, text: `hi ${i} ✓` };
      sent.push(["message", "chat:1", msg]);
      alice.emit("message", "chat:1", msg);
    }
    await room1.waitForEvents(sent.length);
    // A marker to chat:2 after alice's messages arrived: anything of hers sent to
    // room2 would have come before it.
    await emit(server, { namespace: "/chat", rooms: ["chat:2"], event: "marker", args: [] });
    await room2.waitForEvents(2);

    assert.deepEqual(room1.events.map(asCall), sent, "chat:1's listener gets alice's messages, in order, and not bob's");
    assert.deepEqual(
      room2.events.map(asCall),
      [["message", "chat:2", { from: "bob", text: "hello two" }], ["marker"]],
      "chat:2's listener gets bob's message and not alice's",
    );
    for (const e of [...room1.events, ...room2.events]) {
      assert.equal(e.ownId, null, "without [recovery] events carry no id");
    }
  });
});

describe("reconnecting with Last-Event-ID", () => {
  it("after the server ends a stream, a reconnect with Last-Event-ID replays exactly the room's later events once, in order; a bogus id says recovered:false and live events flow", async () => {
    const server = await serve(table("sse", { enabled: true }), table("recovery", { enabled: true }), ROOT_WITH_ROOMS);
    const seq = (n) => emit(server, { rooms: ["news"], event: "seq", args: [{ n }] });
    const first = await listener(server, { rooms: ["news"] });
    for (let n = 1; n <= 3; n++) await seq(n);
    await first.waitForEvents(3);
    const idOf = new Map(first.events.map((e) => [JSON.parse(e.data)[0].n, e.ownId]));
    assert.equal(first.lastEventId, idOf.get(3));

    // The server ends the stream: the API disconnects the listener's socket.
    const res = await server.api(API_KEY, "POST", "/api/v1/sockets/disconnect", { socket_ids: [first.sid] });
    assert.deepEqual(res, { status: 200, body: { affected: 1 } });
    const closing = await first.waitForEvent((e) => e.event === "switchboard:close");
    assert.deepEqual(JSON.parse(closing.data), { reason: "server namespace disconnect" });
    assert.equal(await first.waitForEnd(), null, "the body ends cleanly after the close notice");
    assert.deepEqual(
      first.events.map((e) => e.event),
      ["seq", "seq", "seq", "switchboard:close"],
      "nothing after the close notice",
    );

    // Away: news 4..6, with sports events between them.
    for (let n = 4; n <= 6; n++) {
      await seq(n);
      await emit(server, { rooms: ["sports"], event: "seq", args: [{ n: 100 + n }] });
    }

    // Back with the last id received (the header an EventSource sends).
    const back = await listener(server, { rooms: ["news"] }, { headers: { "last-event-id": first.lastEventId } });
    // Back from further: the id of event 1.
    const older = await listener(server, { rooms: ["news"] }, { headers: { "last-event-id": idOf.get(1) } });
    // A bogus id, as the query parameter.
    const bogus = await listener(server, { rooms: ["news"], lastEventId: "not-an-event-id" });
    await Promise.all([back, older, bogus].map((s) => s.waitForEvents(1)));
    for (let n = 7; n <= 8; n++) await seq(n);
    await back.waitForEvents(1 + 5);
    await older.waitForEvents(1 + 7);
    await bogus.waitForEvents(1 + 2);

    const notice = (s) => {
      const [e] = s.events;
      assert.equal(e.event, "switchboard:recovery", "the recovery notice comes first");
      assert.equal(e.ownId, null, "the notice has no id of its own");
      return JSON.parse(e.data);
    };
    const numbers = (s) =>
      s.events.slice(1).map((e) => {
        assert.equal(e.event, "seq");
        return JSON.parse(e.data)[0].n;
      });
    assert.deepEqual(notice(back), { recovered: true, replayed: 3 });
    assert.deepEqual(numbers(back), [4, 5, 6, 7, 8], "the missed events once, in order, then the live ones");
    assert.deepEqual(notice(older), { recovered: true, replayed: 5 });
    assert.deepEqual(numbers(older), [2, 3, 4, 5, 6, 7, 8], "replay starts right after the given id, then the live ones");
    assert.deepEqual(notice(bogus), { recovered: false, reason: "unknown event id" });
    assert.deepEqual(numbers(bogus), [7, 8], "no replay for a bogus id, live events still flow");

    // One offset per event, whichever stream delivered it.
    for (const s of [back, older, bogus]) {
      for (const e of s.events.slice(1)) {
        const n = JSON.parse(e.data)[0].n;
        assert.ok(e.ownId, `event ${n} has an id`);
        if (idOf.has(n)) assert.equal(e.ownId, idOf.get(n), `event ${n} keeps its id`);
        else idOf.set(n, e.ownId);
      }
    }
    assert.equal(new Set(idOf.values()).size, 8, "eight events, eight ids");
  });

  it("without [recovery] a Last-Event-ID is answered recovered:false (recovery off) and events carry no id", async () => {
    const server = await serve(table("sse", { enabled: true }), ROOT_WITH_ROOMS);
    const s = await listener(server, { rooms: ["news"] }, { headers: { "last-event-id": "abc-1" } });
    await emit(server, { rooms: ["news"], event: "tick", args: [1] });
    await s.waitForEvents(2);
    assert.deepEqual(s.events.map((e) => [e.event, e.ownId, JSON.parse(e.data)]), [
      ["switchboard:recovery", null, { recovered: false, reason: "connection state recovery is off for this namespace" }],
      ["tick", null, [1]],
    ]);
  });
});

describe("authentication and rooms of SSE requests", () => {
  const SECURE = `
[[namespaces]]
name = "/secure"
[namespaces.auth]
secret = "${JWT_SECRET}"
[namespaces.rooms]
auto_join = ["user:{sub}"]
allow_from_claim = "rooms"
`;

  it("a JWT namespace refuses a missing, expired or forged token (401 with its code) and a room the claims do not grant (403), and accepts a bearer token or ?token= with its granted and auto-joined rooms", async () => {
    const server = await serve(table("sse", { enabled: true, auth_params: ["token"] }), SECURE);
    const good = jwt({ sub: "alice", exp: nowSeconds() + 600, rooms: ["team:red"] });
    const bearer = (token) => ({ headers: { authorization: `Bearer ${token}` } });
    const nsp = "/secure";

    const cases = [
      [{ nsp, rooms: ["team:red"] }, {}, 401, "missing"],
      [{ nsp }, bearer(jwt({ sub: "alice", exp: nowSeconds() - 3600 })), 401, "expired"],
      [{ nsp }, bearer(jwt({ sub: "alice", exp: nowSeconds() + 600 }, "a-different-secret-0123456789abcdef")), 401, "bad_signature"],
      [{ nsp, rooms: ["team:blue"] }, bearer(good), 403, "room_not_allowed"],
      [{ nsp, rooms: ["team:red", "team:blue"] }, bearer(good), 403, "room_not_allowed"],
    ];
    for (const [params, opts, status, code] of cases) {
      const r = await refusal(server, params, opts);
      assert.equal(r.status, status, `${JSON.stringify(params)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code, `${JSON.stringify(params)}: ${JSON.stringify(r.body)}`);
      assert.equal(typeof r.body.message, "string");
    }

    const viaHeader = await listener(server, { nsp, rooms: ["team:red"] }, bearer(good));
    const viaQuery = await listener(server, { nsp, rooms: ["team:red"], token: good });
    await emit(server, { namespace: nsp, rooms: ["team:red"], event: "granted", args: [] });
    await emit(server, { namespace: nsp, rooms: ["user:alice"], event: "personal", args: [] });
    for (const s of [viaHeader, viaQuery]) {
      await s.waitForEvents(2);
      assert.deepEqual(s.events.map(asCall), [["granted"], ["personal"]], "the claim's room and the auto-joined one");
    }
    const listed = await listSockets(server, nsp);
    for (const s of [viaHeader, viaQuery]) {
      const entry = listed.find((x) => x.id === s.sid);
      assert.ok(entry, `${s.sid} is listed`);
      assert.deepEqual([...entry.rooms].sort(), [s.sid, "team:red", "user:alice"].sort());
      assert.equal(entry.data?.claims?.sub, "alice");
    }
  });

  it("?token= authenticates only when sse.auth_params names it", async () => {
    const server = await serve(table("sse", { enabled: true }), SECURE);
    const good = jwt({ sub: "bob", exp: nowSeconds() + 600 });
    const r = await refusal(server, { nsp: "/secure", token: good });
    assert.deepEqual([r.status, r.body.code], [401, "missing"], JSON.stringify(r.body));
    await listener(server, { nsp: "/secure" }, { headers: { authorization: `Bearer ${good}` } });
  });

  it("a stream whose token expires while it is open ends with switchboard:close \"auth expired\"; another, kept alive by heartbeat comments, goes on", async () => {
    const server = await serve(table("sse", { enabled: true, auth_params: ["token"], heartbeat: "300ms" }), SECURE);
    const lasting = await listener(server, { nsp: "/secure", token: jwt({ sub: "carol", exp: nowSeconds() + 600 }) });
    const short = await listener(server, { nsp: "/secure", token: jwt({ sub: "dave", exp: nowSeconds() + 2 }) });
    const closing = await short.waitForEvent((e) => e.event === "switchboard:close", { what: "the close notice at exp" });
    assert.deepEqual(JSON.parse(closing.data), { reason: "auth expired" });
    assert.equal(await short.waitForEnd(), null, "the body ends cleanly");
    // The other stream is still served: an event reaches it after the expiry.
    await emit(server, { namespace: "/secure", rooms: ["user:carol"], event: "still-here", args: [] });
    await lasting.waitForEvents(1);
    assert.deepEqual(lasting.events.map(asCall), [["still-here"]]);
    assert.equal(lasting.done, false);
    // Heartbeats are empty comments (`:`), several by now with one every 300 ms.
    await lasting.until(() => lasting.comments.filter((c) => c === "").length >= 2, {
      what: "two heartbeat comments",
    });
    assert.equal(lasting.done, false, "a listener that takes its heartbeats stays connected");
  });
});

describe("which requests are served", () => {
  it("refuses a namespace with sse = false (403 sse_disabled), an unknown namespace (404), a POST (405) and a malformed nsp (400), and leaks no connection", async () => {
    const server = await serve(
      table("sse", { enabled: true }),
      `
[[namespaces]]
name = "/"
[[namespaces]]
name = "/quiet"
sse = false
`,
    );
    const open = await listener(server);
    const cases = [
      [{ nsp: "/quiet" }, {}, 403, "sse_disabled"],
      [{ nsp: "/nope" }, {}, 404, "unknown_namespace"],
      [{ nsp: "chat" }, {}, 400, "bad_request"],
      [{ nsp: "/a,b" }, {}, 400, "bad_request"],
      [{}, { method: "POST" }, 405, "method_not_allowed"],
    ];
    for (const [params, opts, status, code] of cases) {
      const r = await refusal(server, params, opts);
      assert.equal(r.status, status, `${JSON.stringify([params, opts])}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code, `${JSON.stringify([params, opts])}: ${JSON.stringify(r.body)}`);
      if (status === 405) assert.equal(r.headers.get("allow"), "GET");
    }
    // Only the accepted stream holds a connection; closing it leaves none.
    await waitFor(async () => (await server.metrics()).get(SSE_GAUGE) === 1, { what: `${SSE_GAUGE} == 1` });
    open.close();
    await waitFor(async () => (await server.metrics()).get(SSE_GAUGE) === 0, { what: `${SSE_GAUGE} == 0` });
  });

  it("with sse.enabled off, only a namespace with sse = true is served; with no such namespace /sse is not a route", async () => {
    const server = await serve(`
[[namespaces]]
name = "/"
[[namespaces]]
name = "/live"
sse = true
`);
    await listener(server, { nsp: "/live" });
    const r = await refusal(server, { nsp: "/" });
    assert.deepEqual([r.status, r.body.code], [403, "sse_disabled"], JSON.stringify(r.body));

    const plain = await serve(ROOT_WITH_ROOMS);
    const none = await refusal(plain, {});
    assert.equal(none.status, 404, JSON.stringify(none.body));
    assert.equal((await plain.metrics()).get(SSE_GAUGE), 0);
  });
});

describe("limits", () => {
  it("a listener that stops reading is cut off as a slow consumer while another SSE listener and a socket.io-client in the room get every event", async (t) => {
    const receiver = await webhookReceiver();
    const server = await serve(
      table("sse", { enabled: true }),
      table("queue", { max_packets: 32 }),
      table("hooks.webhook", { url: receiver.url, secret: WEBHOOK_SECRET }),
      ROOT_WITH_ROOMS,
    );
    const healthy = await listener(server, { rooms: ["news"] });
    const socket = await ioClient(server.url, WEBSOCKET, ["news"]);
    const got = [];
    socket.on("flood", (e) => got.push(e.n));
    const stalled = await stalledReader(server, "/sse?room=news");
    assert.match(stalled.head, /^HTTP\/1\.1 200 /);

    // 64 KiB events until the stalled reader is cut off (the loopback buffers hold a
    // few MB first), then a few more; the cap only bounds a server that never cuts.
    const payload = "x".repeat(64 * 1024);
    const CAP = 1500;
    let sent = 0;
    let cut = false;
    while (!cut && sent < CAP) {
      await emit(server, { rooms: ["news"], event: "flood", args: [{ n: sent++, payload }] });
      if (sent % 8 === 0) cut = ((await server.metrics()).get(SLOW_CONSUMERS) ?? 0) >= 1;
    }
    assert.ok(cut, `the stalled reader was not cut off as a slow consumer after ${sent} events of 64 KiB`);
    t.diagnostic(`cut off after at most ${sent} events of 64 KiB`);
    for (let i = 0; i < 5; i++) {
      await emit(server, { rooms: ["news"], event: "flood", args: [{ n: sent++, payload }] });
    }
    const expected = Array.from({ length: sent }, (_, n) => n);

    await until(got, sent, 30_000);
    await healthy.waitForEvents(sent, { timeout: 30_000 });
    assert.deepEqual(got, expected, "the socket.io-client got every event, in order");
    assert.deepEqual(
      healthy.events.map((e) => JSON.parse(e.data)[0].n),
      expected,
      "the reading SSE listener got every event, in order",
    );
    assert.equal(healthy.done, false, "the reading listener is still connected");
    assert.equal(socket.connected, true);

    const hook = await hookFor(receiver, "disconnection", stalled.sid);
    assert.equal(hook.data.reason, "slow consumer");
    assert.equal(hook.data.transport, "sse");
    assert.equal((await server.metrics()).get(SLOW_CONSUMERS), 1, "only the stalled reader was cut off");
  });

  it("SSE listeners count against engine.max_connections: the next SSE request or handshake gets 503, and a closed listener frees its slot", async () => {
    const server = await serve(table("engine", { max_connections: 3 }), table("sse", { enabled: true }), ROOT_WITH_ROOMS);
    const a = await listener(server);
    await listener(server, { rooms: ["news"] });
    await ioClient(server.url, WEBSOCKET);
    const refusedBefore = (await server.metrics()).get("switchboard_connections_refused_total");

    const full = await refusal(server, {});
    assert.equal(full.status, 503, JSON.stringify(full.body));
    assert.ok(full.headers.get("retry-after"), "503 carries Retry-After");
    const handshake = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
    await handshake.arrayBuffer();
    assert.equal(handshake.status, 503, "an Engine.IO handshake is refused too: the SSE listeners hold two of the three slots");
    assert.equal((await server.metrics()).get("switchboard_connections_refused_total"), refusedBefore + 2);

    a.close();
    // The gauge drops a moment before the session leaves the registry, so a request
    // right then may still find no slot: retried until one is served (bounded).
    await waitFor(async () => (await server.metrics()).get(SSE_GAUGE) === 1, { what: `${SSE_GAUGE} == 1` });
    const statuses = [];
    const again = await waitFor(
      async () => {
        const s = await listen(server);
        statuses.push(s.status);
        if (s.ok) return s;
        assert.equal(s.status, 503, JSON.stringify(s.body));
        return null;
      },
      { what: "a listener to be served in the freed slot" },
    );
    await again.waitForComment((c) => c.startsWith("connected "));
    assert.ok(statuses.every((s) => s === 503 || s === 200), `${statuses}`);
  });
});

describe("presence, hooks and metrics", () => {
  it("an SSE listener is listed with handshake.transport \"sse\", its webhooks carry transport \"sse\", and the sse gauge counts it while open", async () => {
    const receiver = await webhookReceiver();
    const server = await serve(
      table("sse", { enabled: true }),
      table("hooks.webhook", { url: receiver.url, secret: WEBHOOK_SECRET }),
      ROOT_WITH_ROOMS,
    );
    const before = await server.metrics();
    assert.equal(before.get(SSE_GAUGE), 0);
    const socket = await ioClient(server.url, WEBSOCKET);
    const sse = await listener(server, { rooms: ["news"] });

    const listed = await listSockets(server);
    const mine = listed.find((s) => s.id === sse.sid);
    assert.ok(mine, `the listener ${sse.sid} is listed: ${JSON.stringify(listed)}`);
    assert.equal(mine.handshake.transport, "sse");
    assert.deepEqual([...mine.rooms].sort(), [sse.sid, "news"].sort());
    assert.equal(listed.find((s) => s.id === socket.id)?.handshake.transport, "websocket");

    const open = await server.metrics();
    assert.equal(open.get(SSE_GAUGE), 1);
    assert.equal(open.get('switchboard_connections{transport="websocket"}'), 1);
    assert.equal(open.get('switchboard_sockets{namespace="/"}'), 2);

    const connected = await hookFor(receiver, "connection", sse.sid);
    assert.equal(connected.data.transport, "sse");
    assert.equal(connected.data.namespace, "/");
    assert.equal((await hookFor(receiver, "connection", socket.id)).data.transport, "websocket");

    sse.close();
    const gone = await hookFor(receiver, "disconnection", sse.sid);
    assert.equal(gone.data.transport, "sse");
    assert.equal(gone.data.reason, "transport close");
    await waitFor(async () => (await server.metrics()).get(SSE_GAUGE) === 0, { what: `${SSE_GAUGE} == 0` });
    await waitFor(async () => {
      const ids = (await listSockets(server)).map((s) => s.id);
      return ids.length === 1 && ids[0] === socket.id;
    }, { what: "the listing to show only the socket.io-client" });
  });
});

describe("the test SSE client (lib/sse.mjs) parses as the WHATWG standard says", () => {
  it("handles CR, LF and CRLF split across chunks, a BOM, comments, ids and retry", () => {
    const events = [];
    const comments = [];
    const parser = new SseParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c) });
    const text = "\uFEFFretry: 1500\r\n: hi\r\n\r\nid: 7\nevent: a\ndata: x\rdata:y\r\n\r\ndata: z\n\nid\ndata: w\n\nid: a\0b\nretry: 1x\ndata\n\nevent: lost\n\ndata: partial";
    for (let i = 0; i < text.length; i += 3) parser.push(text.slice(i, i + 3));
    parser.end();
    assert.deepEqual(comments, ["hi"]);
    assert.equal(parser.retry, 1500);
    assert.deepEqual(events, [
      { id: "7", ownId: "7", event: "a", data: "x\ny" },
      { id: "7", ownId: null, event: "message", data: "z" },
      { id: "", ownId: "", event: "message", data: "w" },
      { id: "", ownId: null, event: "message", data: "" },
    ]);
    assert.deepEqual(parseSse("data: one\n\n").events, [{ id: "", ownId: null, event: "message", data: "one" }]);
  });
});
