// The Admin UI's events from Switchboard against those of the package's own server:
// a Node.js Socket.IO 4.8 server with `instrument()` of `@socket.io/admin-ui` and
// `switchboard serve` with `[admin]`, both in development mode with the same
// credentials, each watched by a UI-like admin client while the same user client does
// the same things (connects on polling and upgrades, joins a room and leaves it, sends an
// event, is sent one, disconnects). Each event's
// arguments must have the same shape on both: the same keys, with values of the same
// JSON types, recursively (what differs by nature — ids, times, counts, host names —
// is not compared, only its type). A field Switchboard could not fill the same way
// would be listed in KNOWN_DIFFERENCES with the reason; there is none.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, afterEach, before, describe, it } from "node:test";
import { instrument } from "@socket.io/admin-ui";
import { Server } from "socket.io";
import { Clients, TRANSPORT_MODES, connected, once } from "../lib/client.mjs";
import { startServeNode } from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";
import { startWebhookReceiver } from "../lib/webhook.mjs";

const [WEBSOCKET, , UPGRADE] = TRANSPORT_MODES;
const WEBHOOK_SECRET = "admin-shapes-webhook-secret-0123456789";
const PASSWORD = "changeit";
const PASSWORD_HASH = "$2b$04$DGiHFj8ZMmuoGJBcJZxvXus40HSeThXhhgNjjSsYgnYKqu7M5nsUS";

/** Paths (`event.arg.key…`, `[]` for array items) whose shape differs, and why: none. */
const KNOWN_DIFFERENCES = new Map([]);

/**
 * Maps whose keys are the client's or the application's (request headers, query
 * parameters, `socket.data`): only that both are objects is compared. Switchboard does
 * not keep the WebSocket handshake's own headers (`upgrade`, `sec-websocket-*`).
 */
const FREE_FORM = ["handshake.headers", "handshake.query", "data"];

const clients = new Clients();
afterEach(() => clients.closeAll());

/** A JSON value's shape: its type, and for objects and arrays their members' shapes. */
function shape(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length ? [shape(value[0])] : [];
  if (typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, shape(value[k])]));
  }
  return typeof value;
}

/** Differences between two shapes, as `path: a ≠ b`, known ones left out. */
function differences(a, b, path, out = []) {
  if (KNOWN_DIFFERENCES.has(path)) return out;
  if (FREE_FORM.some((f) => path.endsWith(`.${f}`))) {
    const kind = (v) => (v && typeof v === "object" && !Array.isArray(v) ? "object" : JSON.stringify(v));
    if (kind(a) !== kind(b)) out.push(`${path}: Node ${kind(a)} ≠ Switchboard ${kind(b)}`);
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length && b.length) differences(a[0], b[0], `${path}.[]`, out);
    else if (a.length || b.length) out.push(`${path}: empty only from ${a.length ? "Switchboard" : "Node"}`);
    return out;
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(key in a) || !(key in b)) out.push(`${path}.${key}: ${key in a ? "only Node" : "only Switchboard"}`);
      else differences(a[key], b[key], `${path}.${key}`, out);
    }
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${path}: Node ${JSON.stringify(a)} ≠ Switchboard ${JSON.stringify(b)}`);
  return out;
}

/** An admin client of `url`, logged in; what it hears is kept in `heard`. */
async function ui(url) {
  const socket = clients.open(`${url}/admin`, WEBSOCKET, { auth: { username: "admin", password: PASSWORD } });
  socket.heard = [];
  socket.onAny((event, ...args) => socket.heard.push([event, ...args]));
  socket.connect();
  await connected(socket);
  return socket;
}

/** The first `event` heard by `admin` for which `accept(args)` holds. */
function first(admin, event, accept = () => true) {
  return waitFor(() => admin.heard.find(([e, ...args]) => e === event && accept(args))?.slice(1), {
    what: `the admin client to hear ${event}`,
  });
}

/**
 * What a user does, watched by `admin`: every event the package sends, by name. The
 * server answers `ping-me` by emitting `pong` to the sender (Node: its handler;
 * Switchboard: the backend's reply to the forwarded event).
 */
async function scenario(url, admin) {
  const got = {};
  got.config = await first(admin, "config");
  got.server_stats = await first(admin, "server_stats");
  got.all_sockets = await first(admin, "all_sockets");
  const user = clients.open(url, UPGRADE);
  user.connect();
  await connected(user);
  const id = user.id;
  got.socket_connected = await first(admin, "socket_connected", ([s]) => s.id === id);
  got.socket_updated = await first(admin, "socket_updated", ([u]) => u.id === id && u.transport === "websocket");
  assert.deepEqual(await user.timeout(5_000).emitWithAck("join", "lobby"), { ok: true });
  got.room_joined = await first(admin, "room_joined", ([, room, sid]) => room === "lobby" && sid === id);
  assert.deepEqual(await user.timeout(5_000).emitWithAck("leave", "lobby"), { ok: true });
  got.room_left = await first(admin, "room_left", ([, room, sid]) => room === "lobby" && sid === id);
  user.emit("hello", { n: 1 });
  got.event_received = await first(admin, "event_received", ([, sid, args]) => sid === id && args[0] === "hello");
  const pong = once(user, "pong");
  user.emit("ping-me", { n: 2 });
  assert.deepEqual(await pong, [{ n: 2 }]);
  got.event_sent = await first(admin, "event_sent", ([, sid, args]) => sid === id && args[0] === "pong");
  user.disconnect();
  got.socket_disconnected = await first(admin, "socket_disconnected", ([, sid]) => sid === id);
  return got;
}

describe("the Admin UI's events: Switchboard against @socket.io/admin-ui's own server", () => {
  let nodeServer;
  let nodeUrl;
  let switchboard;
  let backend;

  before(async () => {
    const http = createServer();
    const io = new Server(http, { cors: { origin: "*" } });
    instrument(io, { auth: { type: "basic", username: "admin", password: PASSWORD_HASH }, mode: "development" });
    io.on("connection", (socket) => {
      socket.on("join", (room, ack) => {
        socket.join(room);
        ack?.({ ok: true });
      });
      socket.on("leave", (room, ack) => {
        socket.leave(room);
        ack?.({ ok: true });
      });
      socket.on("ping-me", (...args) => socket.emit("pong", ...args));
    });
    await new Promise((r) => http.listen(0, "127.0.0.1", r));
    nodeServer = { io, http };
    nodeUrl = `http://127.0.0.1:${http.address().port}`;
    backend = await startWebhookReceiver({
      secret: WEBHOOK_SECRET,
      reply: (hook) => ({ actions: [{ type: "emit", rooms: [], event: "pong", args: hook.data.args }] }),
    });
    switchboard = await startServeNode({
      name: "shapes",
      adapter: "memory",
      recovery: { enabled: false },
      extra:
        `[admin]\nenabled = true\nusername = "admin"\npassword_hash = "${PASSWORD_HASH}"\nmode = "development"\n\n` +
        `[[namespaces]]\nname = "/"\n[namespaces.rooms]\nallow = ["*"]\n` +
        `[[namespaces.events]]\nname = "ping-me"\naction = "forward"\n\n` +
        `[hooks.webhook]\nurl = "${backend.url}"\nsecret = "${WEBHOOK_SECRET}"\n`,
    });
  });
  after(async () => {
    await switchboard?.stop();
    await backend?.close();
    if (nodeServer) {
      nodeServer.io.close();
      await new Promise((r) => nodeServer.http.close(r));
    }
  });

  it("every event the UI reads has the same shape from both servers", async () => {
    const fromNode = await scenario(nodeUrl, await ui(nodeUrl));
    const fromSwitchboard = await scenario(switchboard.url, await ui(switchboard.url));
    const found = [];
    for (const event of Object.keys(fromNode)) {
      const node = fromNode[event].map(shape);
      const ours = fromSwitchboard[event].map(shape);
      assert.equal(ours.length, node.length, `${event}: ${node.length} arguments from Node, ${ours.length} from Switchboard`);
      node.forEach((s, i) => differences(s, ours[i], `${event}.${i}`, found));
    }
    assert.deepEqual(found, [], "shapes that differ (add a reason to KNOWN_DIFFERENCES only if it is by design)");
  });
});
