// The disconnect diagnosis (issue 12) end to end against the shipped `switchboard serve`
// binary: each cause of a disconnect is induced with real clients — official
// `socket.io-client`s in this process or in a child `node` process that is frozen
// (SIGSTOP) or killed (SIGKILL), raw TCP WebSockets that stop reading, reset the
// connection or send garbage, the HTTP API, a token that expires, a SIGTERM drain —
// and checked from outside, as an operator sees it:
//   - the `disconnection` webhook: `reason`, `diagnosis.category`, `confidence`, and
//     evidence whose numbers are parsed and compared with the configuration (the
//     silence against the heartbeat, the queue against its bounds, the rate limit, the
//     token's exp);
//   - `/metrics`: `switchboard_disconnects_total{category,reason}` (counted per
//     connection) changes by exactly the connection the case closed, nothing else.
// The last test checks that every induced case was classified as expected.
//
// Several causes share one server where their configs allow; each case waits for
// every connection it opened to be gone before the next one starts, so the metric
// deltas are its own. Waits are bounded safety nets, never assertions on speed.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, afterEach, before, describe, it } from "node:test";
import { Clients, TRANSPORT_MODES, WAIT_MS, connected, hs256, once, upgradedTo } from "../lib/client.mjs";
import { RawWebSocket } from "../lib/raw-websocket.mjs";
import { reapOnExit } from "../lib/reaper.mjs";
import { startSwitchboard } from "../lib/switchboard.mjs";
import { freeze, waitFor } from "../lib/wait.mjs";
import { startWebhookReceiver } from "../lib/webhook.mjs";

const INTEROP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const API_KEY = "diagnosis-tests-api-key-0123456789";
/** HS256 key of `/secure` (at least 32 bytes). */
const JWT_SECRET = "diagnosis-tests-jwt-secret-0123456789abcdef";
const WEBHOOK_SECRET = "diagnosis-tests-webhook-secret-0123456789";

const [WEBSOCKET, POLLING] = TRANSPORT_MODES;

/** `engine.max_payload` of the shared server. */
const MAX_PAYLOAD = 1024;
/** The rate limit of `/limited`. */
const RATE = { events_per_second: 2, burst: 2, disconnect_after: 3 };
/** The heartbeat of the heartbeat server, in ms. */
const PING_INTERVAL_MS = 300;
const PING_TIMEOUT_MS = 300;
/** The queue bounds of the queue server. */
const QUEUE = { max_packets: 1000, max_bytes: 4 * 1024 * 1024 };
/** Size of one flood event's argument on the queue server. */
const FLOOD_CHUNK = 64 * 1024;
/** Safety net on a flood: 25 MiB, several times what the loopback buffers and the queue hold. */
const FLOOD_CAP = 400;

// ------------------------------------------------------------------ what a test opened

const clients = new Clients();
const children = [];
const rawSockets = [];

afterEach(async () => {
  for (const ws of rawSockets.splice(0)) ws.reset();
  clients.closeAll();
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL"); // also ends a stopped process
      await once(child, "exit").catch(() => {});
    }
  }
});

/** Every case's outcome, for the summary at the end: `{ name, expected, actual }`. */
const outcomes = [];

// --------------------------------------------------------------------------- helpers

/** A TOML table from an object of plain values (strings, numbers, booleans, arrays). */
function table(name, keys) {
  return [`[${name}]`, ...Object.entries(keys).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)].join("\n");
}

/**
 * Starts `switchboard serve` with the HTTP API (`API_KEY`, no rate limit), the webhook
 * to `receiver` and the given TOML parts, `[[namespaces]]` entries last.
 */
function serve(receiver, ...parts) {
  const config = [
    table("api", { keys: [API_KEY], rate_limit_per_second: 0 }),
    table("hooks.webhook", { url: receiver.url, secret: WEBHOOK_SECRET, backoff_initial: "100ms" }),
    ...parts,
  ].join("\n\n");
  return startSwitchboard({ config: `${config}\n` });
}

/** `/` with every room open to clients (and so to the API's joins). */
const ROOT = `
[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["*"]
`;

/** A receiver of lifecycle webhooks signed with this file's secret (`lib/webhook.mjs`). */
function webhookReceiver() {
  return startWebhookReceiver({ secret: WEBHOOK_SECRET });
}

/** The disconnection webhook of socket `sid`, waited for. */
function disconnection(receiver, sid, ms = WAIT_MS) {
  return waitFor(() => receiver.hooks.find((h) => h.type === "disconnection" && h.data?.socket_id === sid), {
    timeout: ms,
    what: `the disconnection webhook of ${sid} (received: ${JSON.stringify(
      receiver.hooks.map((h) => [h.type, h.data?.socket_id, h.data?.reason]),
    )}, forged: ${receiver.forged.length})`,
  });
}

/** `switchboard_disconnects_total{category,reason}` as exposed. */
const sample = (category, reason) => `switchboard_disconnects_total{category="${category}",reason="${reason}"}`;

/** Every `switchboard_disconnects_total` sample of the server now. */
async function disconnectCounts(server) {
  const counts = new Map();
  for (const [k, v] of await server.metrics()) {
    if (k.startsWith("switchboard_disconnects_total{")) counts.set(k, v);
  }
  return counts;
}

/** Open connections of every transport. */
async function openConnections(server) {
  const m = await server.metrics();
  return ["polling", "websocket", "sse"].reduce((n, t) => n + (m.get(`switchboard_connections{transport="${t}"}`) ?? 0), 0);
}

/** Waits until the server holds no connection (every close of a case is counted). */
function allClosed(server) {
  return waitFor(async () => (await openConnections(server)) === 0, {
    what: "every connection of the server to be closed",
  });
}

/**
 * Once every connection is closed: the samples that changed since `before`, with their
 * change, as an object (`{ [sample]: delta }`).
 */
async function disconnectsSince(server, before) {
  await allClosed(server);
  const delta = {};
  for (const [k, v] of await disconnectCounts(server)) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) delta[k] = d;
  }
  return delta;
}

/** `612 ms` / `1.4 s` → milliseconds. */
function durationMs(text) {
  const m = /^(\d+(?:\.\d+)?) (ms|s)$/.exec(text);
  assert.ok(m, `not a duration: ${JSON.stringify(text)}`);
  return Number(m[1]) * (m[2] === "s" ? 1000 : 1);
}

/** `3.0 MiB` / `12.0 KiB` / `512 B` → bytes (to the precision shown). */
function sizeBytes(text) {
  const m = /^(\d+(?:\.\d+)?) (B|KiB|MiB)$/.exec(text);
  assert.ok(m, `not a size: ${JSON.stringify(text)}`);
  return Number(m[1]) * { B: 1, KiB: 1024, MiB: 1024 * 1024 }[m[2]];
}

/** `outbound queue at N packets / X (bounds A / B)` → `{ packets, bytes, maxPackets, maxBytes }`. */
function queueFact(text) {
  const m = /^outbound queue at (\d+) packets \/ (.+) \(bounds (\d+) \/ (.+)\)$/.exec(text);
  assert.ok(m, `not a queue fact: ${JSON.stringify(text)}`);
  return { packets: Number(m[1]), bytes: sizeBytes(m[2]), maxPackets: Number(m[3]), maxBytes: sizeBytes(m[4]) };
}

/**
 * Checks a disconnection webhook: its namespace, reason, category and confidence, and
 * that its evidence is `evidence` (strings, or regexps whose match is returned, in
 * order) followed by `connected for <duration>`. Records the outcome for the summary
 * first, so that a misdiagnosis is counted even when an assertion below fails.
 * Resolves with `{ facts: [matches...], connectedMs }`.
 */
function checkDiagnosis(name, hook, { namespace = "/", transport, reason, category, confidence, evidence }) {
  const d = hook.data.diagnosis;
  outcomes.push({
    name,
    expected: `${category} (${reason})`,
    actual: `${d?.category} (${hook.data.reason})`,
    confidence: d?.confidence,
  });
  const shown = JSON.stringify(hook.data);
  assert.equal(hook.data.namespace, namespace, shown);
  if (transport) assert.equal(hook.data.transport, transport, shown);
  assert.equal(hook.data.reason, reason, shown);
  assert.ok(d, `no diagnosis in ${shown}`);
  assert.equal(d.category, category, shown);
  assert.equal(d.confidence, confidence, shown);
  assert.equal(d.evidence.length, evidence.length + 1, `evidence: ${JSON.stringify(d.evidence)}`);
  const facts = evidence.map((want, i) => {
    if (typeof want === "string") {
      assert.equal(d.evidence[i], want, `evidence[${i}] of ${shown}`);
      return d.evidence[i];
    }
    const m = want.exec(d.evidence[i]);
    assert.ok(m, `evidence[${i}] ${JSON.stringify(d.evidence[i])} does not match ${want}`);
    return m;
  });
  const last = /^connected for (.+)$/.exec(d.evidence.at(-1));
  assert.ok(last, `the evidence ends with "connected for …": ${JSON.stringify(d.evidence)}`);
  return { facts, connectedMs: durationMs(last[1]) };
}

/** An official client of `url` on `mode` (reconnection off), connected; closed after the test. */
async function ioClient(url, mode, opts = {}) {
  // Not `clients.connect`: its wait for an "auth" event leaves a 10 s timer behind.
  const socket = clients.open(url, mode, opts);
  socket.connect();
  await connected(socket);
  return socket;
}

/**
 * A `socket.io-client` in a child `node` process (so that it can be frozen with SIGSTOP
 * or killed with SIGKILL): connects to `url` over `transport` without reconnecting and
 * resolves with `{ child, sid }` once connected and, on polling, once its next long poll
 * is under way (killed between two polls, it would be found only by the heartbeat).
 * Killed after the test.
 */
async function childClient(url, transport) {
  const script = `
    import { io } from "socket.io-client";
    const [url, transport] = process.argv.slice(1);
    const socket = io(url, { transports: [transport], reconnection: false, forceNew: true });
    // Reported once the connection is busy again: on polling, once the long poll after
    // the CONNECT answer has been issued (and had a moment to reach the server), so a
    // kill lands during a long poll rather than between two.
    const report = () => setTimeout(() => process.stdout.write(JSON.stringify({ sid: socket.id }) + "\\n"), 100);
    socket.on("connect", () => {
      const engine = socket.io.engine.transport;
      if (transport !== "polling" || engine._polling) report();
      else engine.once("poll", report);
    });
    socket.on("connect_error", (err) => { process.stderr.write(String(err)); process.exit(1); });
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, url, transport], {
    cwd: INTEROP_DIR,
    stdio: ["ignore", "pipe", "pipe"],
  });
  reapOnExit(child);
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (err += c));
  const line = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`the child client exited (${child.exitCode}): ${err}`);
      return out.includes("\n") && out.slice(0, out.indexOf("\n"));
    },
    { what: "the child client to connect" },
  );
  return { child, sid: JSON.parse(line).sid };
}

/**
 * An Engine.IO WebSocket over a raw TCP connection (lib/raw-websocket.mjs) to `port`,
 * connected to `/`, answering pings: resolves once the CONNECT is answered, with its
 * `sid` set; it can stop reading (`pause`), reset the connection without a close frame
 * (`reset`) or send anything (`send`).
 */
async function rawConnect(port) {
  const { status, ws } = await RawWebSocket.open(port, "/socket.io/?EIO=4&transport=websocket", {
    answerPings: true,
  });
  assert.equal(status, 101, "WebSocket upgrade");
  rawSockets.push(ws);
  await ws.next((m) => m.startsWith("0{"));
  ws.send("40");
  ws.sid = JSON.parse((await ws.next((m) => m.startsWith("40{"))).slice(2)).sid;
  return ws;
}

/** `POST /api/v1/emit`; throws unless it is 200. */
async function emit(server, body) {
  const res = await server.api(API_KEY, "POST", "/api/v1/emit", body);
  assert.equal(res.status, 200, `emit: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A compact HS256 JWT of `claims`. */
const jwt = (claims, secret = JWT_SECRET) => hs256(claims, secret);

/** What a dropped connection without a close frame is said to be. */
const DROPPED = (transport) => `the ${transport} connection dropped without a close frame`;

// ------------------------------------------------------------------------- the tests

describe("disconnect diagnosis", () => {
  describe("causes on one server (clients, the network, policy, auth, protocol, the API)", () => {
    let receiver;
    let server;
    let before_;

    before(async () => {
      receiver = await webhookReceiver();
      server = await serve(
        receiver,
        table("engine", { max_payload: MAX_PAYLOAD }),
        ROOT,
        `
[[namespaces]]
name = "/limited"
[[namespaces.events]]
name = "*"
action = "relay"
${table("namespaces.rate_limit", RATE)}

[[namespaces]]
name = "/secure"
${table("namespaces.auth", { secret: JWT_SECRET })}
`,
      );
    });
    after(async () => {
      try {
        await server?.stop();
      } finally {
        await receiver?.close();
      }
    });

    /** Every case starts once what the previous one left is closed, from the counters then. */
    async function start() {
      await allClosed(server);
      before_ = await disconnectCounts(server);
    }

    it("a websocket client that closes its connection (close frame) is diagnosed client, confidence 1", async () => {
      await start();
      const socket = await ioClient(server.url, WEBSOCKET);
      const sid = socket.id;
      socket.io.engine.close();
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("websocket client closes", hook, {
        transport: "websocket",
        reason: "transport close",
        category: "client",
        confidence: 1,
        evidence: ["the client closed the websocket connection"],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("client", "transport close")]: 1 });
    });

    it("a polling client that closes its connection (close packet) is diagnosed client, confidence 1", async () => {
      await start();
      const socket = await ioClient(server.url, POLLING);
      const sid = socket.id;
      socket.io.engine.close();
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("polling client closes", hook, {
        transport: "polling",
        reason: "transport close",
        category: "client",
        confidence: 1,
        evidence: ["the client closed the polling connection"],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("client", "transport close")]: 1 });
    });

    it("a client that calls socket.disconnect() is diagnosed client (it left the namespace), and its connection closes as client", async () => {
      await start();
      const socket = await ioClient(server.url, WEBSOCKET);
      const sid = socket.id;
      socket.disconnect();
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("client leaves the namespace", hook, {
        reason: "client namespace disconnect",
        category: "client",
        confidence: 1,
        evidence: ["the client left the namespace"],
      });
      // The metric counts connections: the client library then closes its connection.
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("client", "transport close")]: 1 });
    });

    it("a websocket whose TCP connection is destroyed without a close frame is diagnosed network, confidence 0.8", async () => {
      await start();
      const socket = await ioClient(server.url, WEBSOCKET);
      const sid = socket.id;
      socket.io.engine.transport.ws._socket.destroy();
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("websocket TCP destroyed", hook, {
        transport: "websocket",
        reason: "transport close",
        category: "network",
        confidence: 0.8,
        evidence: [DROPPED("websocket")],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("network", "transport close")]: 1 });
    });

    it("a websocket client process killed with SIGKILL is diagnosed network, confidence 0.8", async () => {
      await start();
      const { child, sid } = await childClient(server.url, "websocket");
      child.kill("SIGKILL");
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("websocket client process killed", hook, {
        transport: "websocket",
        reason: "transport close",
        category: "network",
        confidence: 0.8,
        evidence: [DROPPED("websocket")],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("network", "transport close")]: 1 });
    });

    // The server reads the reset as an I/O error (`transport error`) and records the
    // connection as lost (crates/engine/src/eio/driver.rs, on_ws_message); before it did,
    // this case was diagnosed "the websocket transport failed" at 0.6.
    it("a websocket reset by the client (TCP RST, no close frame) is diagnosed network, confidence 0.8", async () => {
      await start();
      const ws = await rawConnect(server.port);
      ws.reset();
      const hook = await disconnection(receiver, ws.sid);
      const d = hook.data;
      assert.ok(["transport close", "transport error"].includes(d.reason), JSON.stringify(d));
      checkDiagnosis("websocket reset (RST)", hook, {
        transport: "websocket",
        reason: d.reason,
        category: "network",
        confidence: 0.8,
        evidence: [DROPPED("websocket")],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("network", d.reason)]: 1 });
    });

    it("a polling client process killed with SIGKILL during its long poll is diagnosed network, confidence 0.8", async () => {
      await start();
      const { child, sid } = await childClient(server.url, "polling");
      child.kill("SIGKILL");
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("polling client process killed", hook, {
        transport: "polling",
        reason: "transport error",
        category: "network",
        confidence: 0.8,
        evidence: [DROPPED("polling")],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("network", "transport error")]: 1 });
    });

    for (const mode of [WEBSOCKET, POLLING]) {
      it(`a ${mode.final} message over engine.max_payload is diagnosed policy, its size and engine.max_payload in the evidence`, async () => {
        await start();
        const socket = await ioClient(server.url, mode);
        const sid = socket.id;
        const big = "x".repeat(2 * MAX_PAYLOAD);
        socket.emit("big", big);
        // One Socket.IO packet: the WebSocket message, or the whole polling body.
        const size = Buffer.byteLength(`42${JSON.stringify(["big", big])}`);
        const hook = await disconnection(receiver, sid);
        checkDiagnosis(`${mode.final} payload too large`, hook, {
          transport: mode.final,
          reason: "payload too large",
          category: "policy",
          confidence: 1,
          evidence: [
            `a ${mode.final} ${mode.final === "polling" ? "body" : "message"} of ${size} B over engine.max_payload (${MAX_PAYLOAD} B)`,
          ],
        });
        assert.deepEqual(await disconnectsSince(server, before_), { [sample("policy", "payload too large")]: 1 });
      });
    }

    it("a client over the event rate limit is diagnosed policy, the refusals and the limit from the config in the evidence", async () => {
      await start();
      const socket = await ioClient(`${server.url}/limited`, WEBSOCKET);
      const sid = socket.id;
      const gone = once(socket, "disconnect");
      // Far more than burst + disconnect_after, at once: the bucket cannot refill in between.
      for (let i = 0; i < 20; i++) socket.emit("msg", "room", i);
      await gone;
      const hook = await disconnection(receiver, sid);
      const { facts } = checkDiagnosis("rate limited", hook, {
        namespace: "/limited",
        transport: "websocket",
        reason: "rate limited",
        category: "policy",
        confidence: 1,
        evidence: [/^(\d+) events refused in a row \(limit (\d+(?:\.\d+)?) events\/s, burst (\d+)\)$/],
      });
      const [, refused, perSecond, burst] = facts[0].map(Number);
      assert.deepEqual(
        { refused, perSecond, burst },
        { refused: RATE.disconnect_after, perSecond: RATE.events_per_second, burst: RATE.burst },
        "the numbers of [namespaces.rate_limit]",
      );
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("policy", "rate limited")]: 1 });
    });

    it("a client whose token expires without a refresh is diagnosed auth, the token's exp and its date in the evidence", async () => {
      await start();
      const exp = Math.floor(Date.now() / 1000) + 2;
      const socket = await ioClient(`${server.url}/secure`, WEBSOCKET, { auth: { token: jwt({ sub: "alice", exp }) } });
      const sid = socket.id;
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("token expired", hook, {
        namespace: "/secure",
        transport: "websocket",
        reason: "auth expired",
        category: "auth",
        confidence: 1,
        evidence: [`token expired at ${new Date(exp * 1000).toUTCString()} (exp ${exp}), no refresh received`],
      });
      // Not before exp, by the server's own clock: the webhook's timestamp is when the
      // disconnection happened.
      assert.ok(hook.timestamp >= exp * 1000, `disconnected at ${hook.timestamp}, exp ${exp * 1000}`);
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("auth", "auth expired")]: 1 });
    });

    it("a CONNECT refused for a bad token and a malformed handshake are each reported: the refusal webhook, the API and switchboard_refusals_total", async () => {
      await start();
      const counts = async () => {
        const m = await server.metrics();
        return [
          m.get('switchboard_refusals_total{stage="connect",category="auth"}') ?? 0,
          m.get('switchboard_refusals_total{stage="handshake",category="protocol"}') ?? 0,
        ];
      };
      const [auth0, protocol0] = await counts();
      const socket = clients.open(`${server.url}/secure`, WEBSOCKET, {
        auth: { token: jwt({ sub: "alice" }, "not-the-key-of-this-server-0123456789abcdef") },
      });
      socket.connect();
      const [err] = await once(socket, "connect_error");
      const hook = await waitFor(() =>
        receiver.hooks.find((h) => h.type === "refusal" && h.data.stage === "connect" && h.data.namespace === "/secure"),
      );
      assert.equal(hook.data.reason, "connect refused");
      assert.equal(hook.data.transport, "websocket");
      assert.equal(hook.data.diagnosis.category, "auth");
      assert.equal(hook.data.diagnosis.evidence[0], `refused (${err.data.code})`);
      assert.equal(hook.data.diagnosis.evidence[1], `the namespace's middleware refused: ${err.message}`);
      const res = await fetch(`${server.url}/socket.io/?EIO=3&transport=polling`);
      assert.equal(res.status, 400);
      await res.body?.cancel();
      const handshake = await waitFor(() => receiver.hooks.find((h) => h.type === "refusal" && h.data.stage === "handshake"));
      assert.equal(handshake.data.diagnosis.category, "protocol");
      assert.deepEqual(handshake.data.diagnosis.evidence, [
        "refused (bad_request)",
        "not a valid Engine.IO handshake: Unsupported protocol version",
      ]);
      const listed = await server.api(API_KEY, "GET", "/api/v1/disconnects?category=auth");
      assert.ok(
        listed.body.disconnects.some((r) => r.reason === "connect refused" && r.namespace === "/secure" && r.socket_id === ""),
        JSON.stringify(listed.body),
      );
      assert.deepEqual(await counts(), [auth0 + 1, protocol0 + 1]);
      // No socket connected; the refused client's connection closes as its goodbye.
      socket.io.engine.close();
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("client", "transport close")]: 1 });
    });

    it("a client that sends a malformed Socket.IO packet is diagnosed protocol", async () => {
      await start();
      const ws = await rawConnect(server.port);
      ws.send("42[");
      const hook = await disconnection(receiver, ws.sid);
      checkDiagnosis("malformed packet", hook, {
        transport: "websocket",
        reason: "parse error",
        category: "protocol",
        confidence: 1,
        evidence: ["the client sent a malformed packet"],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("protocol", "parse error")]: 1 });
    });

    it("a socket disconnected through the HTTP API is diagnosed server; its client then closes the connection", async () => {
      await start();
      const socket = await ioClient(server.url, WEBSOCKET);
      const sid = socket.id;
      const gone = once(socket, "disconnect");
      const res = await server.api(API_KEY, "POST", "/api/v1/sockets/disconnect", { namespace: "/", socket_ids: [sid] });
      assert.deepEqual(res, { status: 200, body: { affected: 1 } });
      assert.deepEqual(await gone, ["io server disconnect", undefined]);
      const hook = await disconnection(receiver, sid);
      checkDiagnosis("API disconnect", hook, {
        transport: "websocket",
        reason: "server namespace disconnect",
        category: "server",
        confidence: 1,
        evidence: ["closed by the server (the HTTP API or the application)"],
      });
      // The metric counts connections: this one is closed afterwards by the client
      // library, which does not reconnect after "io server disconnect".
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("client", "transport close")]: 1 });
    });

    it("a connection closed through the HTTP API (close: true) is diagnosed server", async () => {
      await start();
      const socket = await ioClient(server.url, WEBSOCKET);
      const sid = socket.id;
      const res = await server.api(API_KEY, "POST", "/api/v1/sockets/disconnect", {
        namespace: "/",
        socket_ids: [sid],
        close: true,
      });
      assert.deepEqual(res, { status: 200, body: { affected: 1 } });
      const hook = await disconnection(receiver, sid);
      // As Node's disconnect(true): the socket leaves its namespace (no session kept
      // for recovery), then the connection closes (counted as a forced close).
      checkDiagnosis("API close", hook, {
        transport: "websocket",
        reason: "server namespace disconnect",
        category: "server",
        confidence: 1,
        evidence: ["closed by the server (the HTTP API or the application)"],
      });
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("server", "forced close")]: 1 });
    });
  });

  describe(`slow readers (queue bounds ${QUEUE.max_packets} packets / 4 MiB)`, () => {
    let receiver;
    let server;
    /** Flood events the loopback buffers took from a reader that stopped reading (measured by the first test). */
    let absorbed;

    before(async () => {
      receiver = await webhookReceiver();
      server = await serve(receiver, table("queue", QUEUE), ROOT);
    });
    after(async () => {
      try {
        await server?.stop();
      } finally {
        await receiver?.close();
      }
    });

    /** A raw WebSocket in room `flood` that then stops reading. */
    async function stalledReader() {
      const ws = await rawConnect(server.port);
      const res = await server.api(API_KEY, "POST", "/api/v1/sockets/join", { socket_ids: [ws.sid], join: ["flood"] });
      assert.deepEqual(res, { status: 200, body: { affected: 1 } });
      ws.pause();
      return ws;
    }

    const chunk = "x".repeat(FLOOD_CHUNK);
    /** Floods room `flood` with up to `n` events; stops early once nobody receives them. Resolves with how many were queued. */
    async function flood(n) {
      let queued = 0;
      for (let i = 0; i < n; i++) {
        const { recipients } = await emit(server, { rooms: ["flood"], event: "flood", args: [chunk] });
        if (recipients === 0) break;
        queued += recipients;
      }
      return queued;
    }

    it("a client that stops reading while its room is flooded is cut off as slow_consumer, the queue and its configured bounds in the evidence", async (t) => {
      await allClosed(server);
      const before_ = await disconnectCounts(server);
      const ws = await stalledReader();
      const queued = await flood(FLOOD_CAP);
      assert.ok(queued < FLOOD_CAP, `still not cut off after ${queued} events of ${FLOOD_CHUNK} bytes`);
      const hook = await disconnection(receiver, ws.sid);
      const { facts } = checkDiagnosis("slow consumer", hook, {
        transport: "websocket",
        reason: "slow consumer",
        category: "slow_consumer",
        confidence: 1,
        evidence: [/^outbound queue at .*$/],
      });
      const q = queueFact(facts[0][0]);
      assert.deepEqual({ maxPackets: q.maxPackets, maxBytes: q.maxBytes }, { maxPackets: QUEUE.max_packets, maxBytes: QUEUE.max_bytes }, "the bounds of [queue]");
      // The queue was full: the next event (a frame of a little over FLOOD_CHUNK) did not fit.
      assert.ok(q.bytes <= QUEUE.max_bytes, `queue ${q.bytes} B over its bound`);
      assert.ok(q.bytes > QUEUE.max_bytes - 2 * FLOOD_CHUNK, `queue ${q.bytes} B not full (bound ${QUEUE.max_bytes} B)`);
      assert.ok(q.packets >= (QUEUE.max_bytes - 2 * FLOOD_CHUNK) / (FLOOD_CHUNK + 64) && q.packets <= QUEUE.max_packets, `queue of ${q.packets} packets`);
      absorbed = queued - q.packets;
      t.diagnostic(`cut off after ${queued} events of 64 KiB; the loopback buffers held about ${absorbed}`);
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("slow_consumer", "slow consumer")]: 1 });
    });

    it("a client whose connection drops while its queue is over half full is diagnosed slow_consumer, confidence 0.6, not network", async () => {
      assert.ok(absorbed !== undefined, "needs the previous test's measure of the loopback buffers");
      await allClosed(server);
      const before_ = await disconnectCounts(server);
      const ws = await stalledReader();
      // Fill the loopback buffers, then three quarters of the queue's byte bound.
      const target = absorbed + Math.floor((0.75 * QUEUE.max_bytes) / FLOOD_CHUNK);
      assert.equal(await flood(target), target, "every event queued: the reader was not cut off");
      ws.reset();
      const hook = await disconnection(receiver, ws.sid);
      const d = hook.data;
      assert.ok(["transport close", "transport error"].includes(d.reason), JSON.stringify(d));
      const { facts } = checkDiagnosis("drop with a filling queue", hook, {
        transport: "websocket",
        reason: d.reason,
        category: "slow_consumer",
        confidence: 0.6,
        evidence: [/^outbound queue at .*$/, DROPPED("websocket")],
      });
      const q = queueFact(facts[0][0]);
      assert.deepEqual({ maxPackets: q.maxPackets, maxBytes: q.maxBytes }, { maxPackets: QUEUE.max_packets, maxBytes: QUEUE.max_bytes });
      assert.ok(q.bytes >= QUEUE.max_bytes / 2 && q.bytes <= QUEUE.max_bytes, `queue at ${q.bytes} B: not between half and all of ${QUEUE.max_bytes} B`);
      assert.deepEqual(await disconnectsSince(server, before_), { [sample("slow_consumer", d.reason)]: 1 });
    });
  });

  describe(`frozen clients (ping interval ${PING_INTERVAL_MS} ms, timeout ${PING_TIMEOUT_MS} ms)`, () => {
    let receiver;
    let server;

    before(async () => {
      receiver = await webhookReceiver();
      server = await serve(receiver, table("engine", { ping_interval: `${PING_INTERVAL_MS}ms`, ping_timeout: `${PING_TIMEOUT_MS}ms` }), ROOT);
    });
    after(async () => {
      try {
        await server?.stop();
      } finally {
        await receiver?.close();
      }
    });

    for (const transport of ["websocket", "polling"]) {
      it(`a ${transport} client frozen past the ping timeout is diagnosed heartbeat, with the silence and the heartbeat in the evidence`, async () => {
        await allClosed(server);
        const before_ = await disconnectCounts(server);
        const { child, sid } = await childClient(server.url, transport);
        await freeze(child.pid);
        const hook = await disconnection(receiver, sid);
        const { facts } = checkDiagnosis(`${transport} client frozen`, hook, {
          transport,
          reason: "ping timeout",
          category: "heartbeat",
          confidence: 1,
          evidence: [/^last heard (.+) ago \(ping interval (.+), timeout (.+)\)$/],
        });
        const [, silence, interval, timeout] = facts[0];
        assert.equal(durationMs(interval), PING_INTERVAL_MS, "engine.ping_interval");
        assert.equal(durationMs(timeout), PING_TIMEOUT_MS, "engine.ping_timeout");
        assert.ok(
          durationMs(silence) >= PING_INTERVAL_MS + PING_TIMEOUT_MS,
          `silent for ${silence}: less than a ping interval plus a timeout`,
        );
        assert.deepEqual(await disconnectsSince(server, before_), { [sample("heartbeat", "ping timeout")]: 1 });
      });
    }
  });

  describe("a drain (SIGTERM)", () => {
    it("every session closed by a SIGTERM drain is diagnosed server, while /metrics counts them", async () => {
      const receiver = await webhookReceiver();
      let server;
      try {
        server = await serve(receiver, table("shutdown", { drain_batch: 1, drain_interval: "1s" }), ROOT);
        const modes = [WEBSOCKET, POLLING, WEBSOCKET];
        const sids = [];
        for (const mode of modes) sids.push((await ioClient(server.url, mode)).id);
        const draining = sample("server", "server shutting down");
        assert.equal((await server.metrics()).get(draining), 0);
        const stopped = server.stop(); // SIGTERM, then a clean exit is required
        // One session a second: the listener stays open until the last one is closed.
        await waitFor(async () => ((await server.metrics()).get(draining) ?? 0) >= 1, {
          what: `${draining} >= 1 during the drain`,
        });
        await stopped;
        for (const [i, sid] of sids.entries()) {
          const hook = await disconnection(receiver, sid);
          checkDiagnosis(`drain (${modes[i].final} client ${i + 1})`, hook, {
            transport: modes[i].final,
            reason: "server shutting down",
            category: "server",
            confidence: 1,
            evidence: ["the server is draining"],
          });
        }
      } finally {
        try {
          await server?.stop(); // already stopped, unless the test failed before
        } finally {
          await receiver.close();
        }
      }
    });
  });

  describe("timelines (breadcrumbs) and scrubbing", () => {
    let receiver;
    let server;

    before(async () => {
      receiver = await webhookReceiver();
      server = await serve(
        receiver,
        table("recovery", { enabled: true }),
        table("diagnosis", { client_ips: "truncate", breadcrumbs: 32 }),
        ROOT,
        `
[[namespaces]]
name = "/limited"
${table("namespaces.rate_limit", RATE)}
`,
      );
    });
    after(async () => {
      try {
        await server?.stop();
      } finally {
        await receiver?.close();
      }
    });

    /** `GET …/sockets/{sid}/timeline` of namespace `nsp`: `{status, body}`. */
    function timeline(nsp, sid) {
      return server.api(API_KEY, "GET", `/api/v1/namespaces/${encodeURIComponent(nsp)}/sockets/${sid}/timeline`);
    }

    /** Asserts the steps are in time order and returns their kinds. */
    function kinds(crumbs) {
      for (let i = 1; i < crumbs.length; i++) {
        assert.ok(crumbs[i - 1].at <= crumbs[i].at, `steps out of order: ${JSON.stringify(crumbs)}`);
      }
      return crumbs.map((c) => c.step);
    }

    it("a live socket's timeline shows its connection opening on polling, the connect, the upgrade and its rooms, with e-mail addresses scrubbed", async () => {
      const socket = await ioClient(server.url, TRANSPORT_MODES[2]);
      await upgradedTo(socket, "websocket");
      const joined = await socket.timeout(WAIT_MS).emitWithAck("join", "user:ann@example.com");
      assert.deepEqual(joined, { ok: true });
      const res = await timeline("/", socket.id);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const crumbs = res.body.breadcrumbs;
      assert.deepEqual(kinds(crumbs), ["opened", "connected", "upgraded", "joined"], JSON.stringify(crumbs));
      assert.deepEqual(
        crumbs.map(({ at, ...rest }) => rest),
        [
          { step: "opened", transport: "polling" },
          { step: "connected", recovered: false },
          { step: "upgraded", transport: "websocket" },
          { step: "joined", room: "user:[email]" },
        ],
      );
      assert.equal(res.body.dropped_steps, 0);
      assert.ok(!JSON.stringify(res.body).includes("ann@example.com"), "the address is scrubbed");
      // diagnosis.client_ips = "truncate": the connection hook shows the network only.
      const hook = await waitFor(() =>
        receiver.hooks.find((h) => h.type === "connection" && h.data?.socket_id === socket.id),
      );
      assert.equal(hook.data.address, "127.0.0.0");
      // The disconnect report carries the same steps, and so does its webhook.
      const sid = socket.id;
      socket.io.engine.close();
      const gone = await disconnection(receiver, sid);
      assert.deepEqual(
        gone.data.diagnosis.breadcrumbs.map((c) => c.step),
        ["opened", "connected", "upgraded", "joined"],
      );
      const reports = await server.api(API_KEY, "GET", `/api/v1/disconnects?socket=${sid}`);
      assert.equal(reports.status, 200);
      assert.deepEqual(reports.body.disconnects[0].breadcrumbs, gone.data.diagnosis.breadcrumbs);
      assert.equal((await timeline("/", sid)).status, 404, "a socket that left has no live timeline");
    });

    it("a streak of events refused by the rate limit is one step, and the report of the disconnect it ends in shows it", async () => {
      const socket = await ioClient(`${server.url}/limited`, WEBSOCKET);
      const sid = socket.id;
      // burst 2, then refusals; the third refusal in a row disconnects.
      for (let i = 0; i < 2 + RATE.disconnect_after; i++) socket.emit("tick", i);
      const hook = await disconnection(receiver, sid);
      assert.equal(hook.data.reason, "rate limited");
      const marked = hook.data.diagnosis.breadcrumbs.filter((c) => c.step === "marked");
      assert.deepEqual(
        marked.map((c) => c.detail),
        [`events refused by the rate limit (${RATE.events_per_second} events/s, burst ${RATE.burst})`],
        JSON.stringify(hook.data.diagnosis.breadcrumbs),
      );
    });

    it("a recovered socket's timeline says it was recovered, from which offset, and how many packets were replayed", async () => {
      const socket = await ioClient(server.url, WEBSOCKET);
      const id = socket.id;
      const got = [];
      socket.on("news", (n) => got.push(n));
      await emit(server, { namespace: "/", event: "news", args: [0] });
      await waitFor(() => got.length === 1, { what: "event 0" });
      const offset = socket._lastOffset;
      assert.ok(offset, "the client holds an offset");
      const gone = once(socket, "disconnect");
      socket.io.engine.close();
      await gone;
      await disconnection(receiver, id);
      for (const n of [1, 2, 3]) await emit(server, { namespace: "/", event: "news", args: [n] });
      socket.connect();
      await connected(socket);
      assert.equal(socket.recovered, true);
      assert.equal(socket.id, id);
      await waitFor(() => got.length === 4, { what: "the three missed events" });
      const res = await timeline("/", id);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const crumbs = res.body.breadcrumbs;
      assert.deepEqual(kinds(crumbs), ["opened", "connected", "recovered"], JSON.stringify(crumbs));
      assert.equal(crumbs[1].recovered, true);
      assert.deepEqual([crumbs[2].offset, crumbs[2].replayed], [offset, 3]);
    });

    it("a timeline is 404 with a JSON error for a socket or namespace this node does not hold", async () => {
      for (const [nsp, sid] of [
        ["/", "AAAAAAAAAAAAAAAAAAAA"],
        ["/", "not-an-id"],
        ["/nowhere", "AAAAAAAAAAAAAAAAAAAA"],
      ]) {
        const res = await timeline(nsp, sid);
        assert.equal(res.status, 404, `${nsp} ${sid}: ${JSON.stringify(res.body)}`);
        assert.equal(typeof res.body.code, "string");
        assert.equal(typeof res.body.message, "string");
      }
    });
  });

  describe("memory pressure (limits.memory, tiers elevated / critical / imminent)", () => {
    /** Room above the idle node's resident memory that the budget leaves. */
    const HEADROOM = 48 * 1024 * 1024;
    /** One flood event's argument: distinct per event, so nothing is shared between queues. */
    const CHUNK = 256 * 1024;
    /** Safety net on a flood: several times the budget. */
    const CAP_BYTES = 6 * HEADROOM;
    /** The pause between two flood events: a sample (100 ms) sees about 1.3 MiB of growth at most. */
    const PACE_MS = 20;
    let receiver;
    let budget;

    before(async () => {
      receiver = await webhookReceiver();
      // The budget: what an idle node of this build holds, plus the headroom.
      const idle = await serve(receiver, table("limits", { memory: "off" }), ROOT);
      try {
        budget = Math.ceil((idle.rssBytes() + HEADROOM) / (1024 * 1024)) * 1024 * 1024;
      } finally {
        await idle.stop();
      }
    });
    after(async () => {
      await receiver?.close();
    });

    /** A node with `memory` as its budget ("off": no tiers) and queues far larger than it. */
    function pressured(memory) {
      return serve(
        receiver,
        table("limits", { memory, memory_interval: "100ms" }),
        table("queue", { max_packets: 100000, max_bytes: 256 * 1024 * 1024 }),
        ROOT,
      );
    }

    /** `readers` raw WebSockets that stop reading. */
    async function stalledReaders(server, readers) {
      const out = [];
      for (let i = 0; i < readers; i++) {
        const ws = await rawConnect(server.port);
        ws.pause();
        out.push(ws);
      }
      return out;
    }

    /**
     * Sends distinct chunks to the readers (the first gets two per round) until
     * `done()` or the cap; resolves with the bytes sent.
     */
    async function flood(server, readers, done) {
      let sent = 0;
      let n = 0;
      while (sent < CAP_BYTES && !(await done())) {
        for (const [i, ws] of readers.entries()) {
          for (let k = 0; k < (i === 0 ? 2 : 1); k++) {
            const arg = `${String(n++).padStart(8, "0")}${"x".repeat(CHUNK - 8)}`;
            await server.api(API_KEY, "POST", "/api/v1/emit", { socket_ids: [ws.sid], event: "chunk", args: [arg] });
            sent += CHUNK;
            await new Promise((r) => setTimeout(r, PACE_MS));
          }
        }
      }
      return sent;
    }

    const tier = async (server) => (await server.metrics()).get("switchboard_memory_pressure_tier");
    const pressureHooks = () => receiver.hooks.filter((h) => h.type === "pressure").map((h) => h.data);

    it("the tiers engage in order under a growing backlog, refuse new clients while critical, shed the largest queue as pressure, and release; the node stays under its budget", async (t) => {
      receiver.hooks.length = 0;
      const server = await pressured(`${budget}`);
      try {
        const readers = await stalledReaders(server, 6);
        let criticalSeen = false;
        await flood(server, readers, async () => {
          const now = await tier(server);
          if (now === 2 && !criticalSeen) {
            criticalSeen = true;
            // Not ready, and new sessions refused with 503 + Retry-After.
            const ready = await fetch(`${server.url}/health/ready`);
            assert.equal(ready.status, 503);
            assert.equal((await ready.json()).code, "memory_pressure");
            const hs = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
            assert.equal(hs.status, 503);
            assert.ok(hs.headers.get("retry-after"), "Retry-After");
            await hs.body?.cancel();
          }
          return receiver.hooks.some((h) => h.type === "disconnection" && h.data.reason === "server overloaded");
        });
        assert.ok(criticalSeen, `critical was seen (tiers: ${JSON.stringify(pressureHooks())})`);
        // The heavy reader (two chunks a round) held the most: it is shed.
        const hook = await disconnection(receiver, readers[0].sid);
        const { facts } = checkDiagnosis("memory pressure shed", hook, {
          transport: "websocket",
          reason: "server overloaded",
          category: "pressure",
          confidence: 1,
          evidence: [/^outbound queue at .*$/, /^memory (.+) of a (.+) budget \((\d+) %, tier imminent; queue bounds halved\)$/],
        });
        assert.equal(sizeBytes(facts[1][2]), Math.round((budget / 1024 / 1024) * 10) / 10 * 1024 * 1024, "the budget in the evidence");
        assert.ok(Number(facts[1][3]) >= 95, `imminent at ${facts[1][3]} %`);
        // Relief: the others close, their queues go, the tiers come back down to normal.
        // (Before it, the flood may still raise the tier again: the shed queue is freed
        // at once, while the flood runs until the shed's hook arrives.)
        const beforeRelief = pressureHooks().length;
        for (const ws of readers) ws.reset();
        await waitFor(async () => (await tier(server)) === 0, { what: "the tier back to normal", timeout: 30_000 });
        const seen = pressureHooks().map((h) => h.tier);
        t.diagnostic(`tiers: ${seen.join(" → ")}; budget ${budget} B; peak RSS ${server.peakRssBytes()} B`);
        assert.deepEqual(seen.slice(0, 3), ["elevated", "critical", "imminent"], "engaged in order");
        const down = seen.slice(Math.max(beforeRelief - 1, 2));
        const rank = (x) => ["normal", "elevated", "critical", "imminent"].indexOf(x);
        assert.ok(down.every((x, i) => i === 0 || rank(x) < rank(down[i - 1])), `released in order: ${seen}`);
        assert.equal(seen.at(-1), "normal");
        for (const h of pressureHooks()) assert.equal(h.budget, budget);
        assert.ok(server.peakRssBytes() <= budget, `peak RSS ${server.peakRssBytes()} B over the budget ${budget} B`);
        assert.equal((await server.metrics()).get("switchboard_memory_pressure_shed_total") >= 1, true);
      } finally {
        await server.stop();
      }
    });

    it("without the tiers the same backlog takes the node past that budget", async () => {
      const server = await pressured("off");
      try {
        const readers = await stalledReaders(server, 6);
        const sent = await flood(server, readers, async () => server.rssBytes() > budget);
        assert.ok(server.rssBytes() > budget, `RSS ${server.rssBytes()} B after ${sent} B, budget ${budget} B`);
        assert.equal(receiver.hooks.filter((h) => h.type === "disconnection" && h.data.reason === "server overloaded" && readers.some((r) => r.sid === h.data.socket_id)).length, 0);
        for (const ws of readers) ws.reset();
      } finally {
        await server.stop();
      }
    });
  });

  it("every induced disconnect was classified as expected (100 %)", (t) => {
    const wrong = outcomes.filter((o) => o.expected !== o.actual);
    for (const o of outcomes) {
      const ok = o.expected === o.actual;
      t.diagnostic(`${ok ? "ok  " : "FAIL"} ${o.name}: ${o.actual}, confidence ${o.confidence}${ok ? "" : ` (expected ${o.expected})`}`);
    }
    const categories = new Set(outcomes.map((o) => o.expected.split(" ")[0]));
    assert.deepEqual(
      [...categories].sort(),
      ["auth", "client", "heartbeat", "network", "policy", "pressure", "protocol", "server", "slow_consumer"],
      "every category the server produces was induced",
    );
    assert.ok(outcomes.length >= 20, `only ${outcomes.length} cases ran`);
    assert.deepEqual(wrong, [], `${outcomes.length - wrong.length} of ${outcomes.length} classified as expected`);
  });
});
