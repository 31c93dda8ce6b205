// The Socket.IO Admin UI's protocol (`@socket.io/admin-ui` 0.5) against the shipped
// `switchboard serve` with `[admin]` on, spoken by the official `socket.io-client` as
// the UI speaks it: a login with `{username, password}` answered by `session`, a
// reload with `{sessionId}`, `config`, `server_stats` every 2 s (from every node of a
// cluster), `all_sockets` in development mode, and the commands `join`, `emit` and
// `_disconnect` acting on user sockets; refused logins (`invalid credentials`), and
// `readonly`. Waits are bounded safety nets, never assertions on speed.

import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { startRedis } from "../cluster/redis.mjs";
import { Manager } from "socket.io-client";
import { Clients, TRANSPORT_MODES, connected, once } from "../lib/client.mjs";
import { startServeNode } from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";
import { startWebhookReceiver } from "../lib/webhook.mjs";

const [WEBSOCKET] = TRANSPORT_MODES;

/** bcrypt (cost 4, so the test spends little CPU) of `changeit`. */
const PASSWORD = "changeit";
const PASSWORD_HASH = "$2b$04$DGiHFj8ZMmuoGJBcJZxvXus40HSeThXhhgNjjSsYgnYKqu7M5nsUS";

const clients = new Clients();
afterEach(() => clients.closeAll());

/** `[admin]` and namespace `/` with every room open. */
function adminConfig(keys) {
  const lines = Object.entries({ enabled: true, username: "admin", password_hash: PASSWORD_HASH, ...keys }).map(
    ([k, v]) => `${k} = ${JSON.stringify(v)}`,
  );
  return `[admin]\n${lines.join("\n")}\n\n[[namespaces]]\nname = "/"\n[namespaces.rooms]\nallow = ["*"]\n`;
}

/** A UI's socket on `/admin` of `url` with `auth`, not yet connected; what it hears is kept in `heard`. */
function adminSocket(url, auth) {
  const socket = clients.open(`${url}/admin`, WEBSOCKET, { auth });
  socket.heard = [];
  socket.onAny((event, ...args) => socket.heard.push([event, ...args]));
  return socket;
}

/** The first `event` the admin socket heard, waited for. */
function heard(socket, event, ms) {
  return waitFor(() => socket.heard.find(([e]) => e === event), { what: `the admin UI to hear ${event}`, timeout: ms });
}

/**
 * The first `event` the admin socket heard after the first `since` events it heard
 * (`socket.heard.length` taken before an action), waited for.
 */
function heardAfter(socket, since, event, ms) {
  return waitFor(() => socket.heard.slice(since).find(([e]) => e === event), {
    what: `the admin UI to hear ${event} after its first ${since} events`,
    timeout: ms,
  });
}

/** The members of room `room` of `/`, asked through `node`'s HTTP API. */
async function roomMembers(node, room) {
  const res = await node.api("GET", `/api/v1/namespaces/%2F/rooms/${encodeURIComponent(room)}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.socket_ids;
}

async function userClient(url) {
  const socket = clients.open(url, WEBSOCKET);
  socket.connect();
  await connected(socket);
  return socket;
}

describe("the Socket.IO Admin UI protocol", () => {
  describe("one node, production mode", () => {
    let node;
    before(async () => {
      node = await startServeNode({ name: "admin-1", adapter: "memory", extra: adminConfig({}) });
    });
    after(async () => node?.stop());

    it("logs in with the password: session, config and server_stats; the session id logs in again without it", async () => {
      const user = await userClient(node.url);
      const ui = adminSocket(node.url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      const [, sessionId] = await heard(ui, "session");
      assert.match(sessionId, /^[0-9a-f]{32}$/);
      const [, config] = await heard(ui, "config");
      assert.deepEqual(config.supportedFeatures, [
        "EMIT",
        "JOIN",
        "LEAVE",
        "DISCONNECT",
        "MJOIN",
        "MLEAVE",
        "MDISCONNECT",
        "AGGREGATED_EVENTS",
      ]);
      const [, stats] = await heard(ui, "server_stats", 5_000);
      assert.equal(typeof stats.serverId, "string");
      assert.equal(typeof stats.hostname, "string");
      assert.equal(typeof stats.pid, "number");
      assert.equal(typeof stats.uptime, "number");
      // The user's connection and the UI's, nothing else on this node yet.
      assert.equal(stats.clientsCount, 2);
      assert.equal(stats.pollingClientsCount, 0);
      assert.ok(Array.isArray(stats.aggregatedEvents));
      const root = stats.namespaces.find((n) => n.name === "/");
      assert.equal(root?.socketsCount, 1, JSON.stringify(stats.namespaces));
      assert.ok(stats.namespaces.some((n) => n.name === "/admin"));
      assert.equal(ui.heard.filter(([e]) => e === "all_sockets").length, 0, "production mode lists no sockets");
      // A reload: the session id alone logs in, and no new session is made.
      const again = adminSocket(node.url, { sessionId });
      again.connect();
      await connected(again);
      await heard(again, "config");
      assert.equal(again.heard.filter(([e]) => e === "session").length, 0);
      user.disconnect();
    });

    it("refuses a wrong password, an unknown user, a forged session id and no credentials with `invalid credentials`", async () => {
      for (const auth of [
        { username: "admin", password: "wrong" },
        { username: "root", password: PASSWORD },
        { sessionId: "0".repeat(32) },
        {},
      ]) {
        const ui = adminSocket(node.url, auth);
        ui.connect();
        const [err] = await once(ui, "connect_error");
        assert.equal(err.message, "invalid credentials", JSON.stringify(auth));
      }
    });

    it("the commands act on user sockets: join a room, emit to it, disconnect by room", async () => {
      const user = await userClient(node.url);
      const ui = adminSocket(node.url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      await heard(ui, "config");
      ui.emit("join", "/", "picked", user.id);
      await waitFor(async () => {
        const res = await node.api("GET", "/api/v1/namespaces/%2F/rooms/picked");
        return res.status === 200 && res.body.socket_ids?.includes(user.id);
      }, { what: "the user socket to join `picked`" });
      const hello = once(user, "hello");
      ui.emit("emit", "/", "picked", "hello", { n: 1 });
      // Recovery is on (serveConfig): the event's offset follows its arguments.
      assert.deepEqual((await hello)[0], { n: 1 });
      // A namespace this node does not have is not created by a command. The command
      // after it is a marker: once its join shows, the node has handled the one before.
      ui.emit("join", "/made-up", "x");
      ui.emit("join", "/", "after-made-up", user.id);
      await waitFor(async () => (await roomMembers(node, "after-made-up")).includes(user.id), {
        what: "the marker command's join",
      });
      const res = await node.api("GET", "/api/v1/namespaces");
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body.namespaces.map((n) => n.name).sort(),
        ["/", "/admin"],
        JSON.stringify(res.body),
      );
      const gone = once(user, "disconnect");
      ui.emit("_disconnect", "/", false, "picked");
      assert.equal((await gone)[0], "io server disconnect");
    });
  });

  describe("readonly, development mode", () => {
    let node;
    before(async () => {
      node = await startServeNode({
        name: "admin-ro",
        adapter: "memory",
        extra: adminConfig({ readonly: true, mode: "development" }),
      });
    });
    after(async () => node?.stop());

    it("offers no command and ignores them, and lists every socket on connect", async () => {
      const user = await userClient(node.url);
      const ui = adminSocket(node.url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      const [, config] = await heard(ui, "config");
      assert.deepEqual(config.supportedFeatures, ["AGGREGATED_EVENTS", "ALL_EVENTS"]);
      const [, sockets] = await heard(ui, "all_sockets");
      const listed = sockets.find((s) => s.id === user.id);
      assert.ok(listed, JSON.stringify(sockets));
      assert.equal(listed.nsp, "/");
      assert.ok(listed.rooms.includes(user.id));
      assert.equal(listed.handshake.auth, undefined, "the handshake's auth is not shown");
      const ignored = [];
      user.onAny((event) => ignored.push(event));
      const since = ui.heard.length;
      ui.emit("_disconnect", "/", true);
      ui.emit("join", "/", "ro-joined", user.id);
      ui.emit("emit", "/", user.id, "ro-emitted", 1);
      // The node has read the commands once it has sent a later round of stats (the
      // UI's packets are handled in order, and the stats come every 2 s).
      await heardAfter(ui, since, "server_stats", 5_000);
      assert.equal(user.connected, true, "the user was disconnected");
      // A round trip on the user's own connection: anything the node sent it before has
      // arrived.
      assert.deepEqual(await user.timeout(5_000).emitWithAck("join", "ro-own"), { ok: true });
      assert.deepEqual(ignored, [], "the user was sent nothing");
      assert.deepEqual(await roomMembers(node, "ro-joined"), []);
      // Development mode tells the UI of every join: the command made none (the user's
      // own join, made after the commands were handled, is told).
      await waitFor(() => ui.heard.some(([e, , room]) => e === "room_joined" && room === "ro-own"), {
        what: "room_joined of the user's own join",
      });
      const joins = ui.heard.filter(([e]) => e === "room_joined").map(([, , room]) => room);
      assert.ok(!joins.includes("ro-joined"), JSON.stringify(joins));
    });
  });

  describe("an event stream of the admin namespace", () => {
    let node;
    before(async () => {
      // SSE on for the application's namespaces, and a UI open to anyone.
      node = await startServeNode({
        name: "admin-sse",
        adapter: "memory",
        extra: `[sse]\nenabled = true\n\n${adminConfig({ auth: false })}`,
      });
    });
    after(async () => node?.stop());

    it("is refused with 403 sse_disabled, while the application's namespaces stream", async () => {
      const admin = await fetch(`${node.url}/sse?nsp=%2Fadmin`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(admin.status, 403);
      assert.equal((await admin.json()).code, "sse_disabled");
      const controller = new AbortController();
      const root = await fetch(`${node.url}/sse?nsp=%2F`, { signal: controller.signal });
      assert.equal(root.status, 200);
      controller.abort();
    });
  });

  describe("development mode's live events", () => {
    const WEBHOOK_SECRET = "admin-tests-webhook-secret-0123456789";
    let node;
    let backend;
    before(async () => {
      // `ping-me` is forwarded to the backend, whose reply emits `pong` to the sender
      // alone: an emit to one socket (`Socket::emit`), which `event_sent` tells.
      backend = await startWebhookReceiver({
        secret: WEBHOOK_SECRET,
        reply: (hook) => ({
          actions: [{ type: "emit", rooms: [], event: "pong", args: hook.data.args }],
          ack: ["ponged"],
        }),
      });
      const events = `\n[[namespaces.events]]\nname = "ping-me"\naction = "forward"\n`;
      const webhook = `\n[hooks.webhook]\nurl = "${backend.url}"\nsecret = "${WEBHOOK_SECRET}"\n`;
      node = await startServeNode({
        name: "admin-dev",
        adapter: "memory",
        extra: adminConfig({ mode: "development" }) + events + webhook,
      });
    });
    after(async () => {
      await node?.stop();
      await backend?.close();
    });

    it("the UI hears sockets connect, join rooms, send events, be sent events and disconnect", async () => {
      const ui = adminSocket(node.url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      await heard(ui, "all_sockets");
      const user = await userClient(node.url);
      const id = user.id;
      const [, info, at] = await waitFor(() => ui.heard.find(([e, s]) => e === "socket_connected" && s.id === id), {
        what: "socket_connected",
      });
      assert.equal(info.nsp, "/");
      assert.ok(!Number.isNaN(Date.parse(at)), `a date: ${at}`);
      assert.deepEqual(await user.timeout(5_000).emitWithAck("join", "lobby"), { ok: true });
      await waitFor(() => ui.heard.find(([e, nsp, room, sid]) => e === "room_joined" && nsp === "/" && room === "lobby" && sid === id), {
        what: "room_joined",
      });
      user.emit("hello", { n: 1 });
      const [, , , args] = await waitFor(
        () => ui.heard.find(([e, nsp, sid, a]) => e === "event_received" && sid === id && a[0] === "hello"),
        { what: "event_received" },
      );
      assert.deepEqual(args, ["hello", { n: 1 }]);
      // Sent an event: the backend's reply to `ping-me` emits `pong` to this socket.
      const pong = once(user, "pong");
      assert.deepEqual(await user.timeout(5_000).emitWithAck("ping-me", { n: 2 }), "ponged");
      assert.deepEqual((await pong)[0], { n: 2 });
      const [, sentNsp, , sent, sentAt] = await waitFor(
        () => ui.heard.find(([e, , sid, a]) => e === "event_sent" && sid === id && a[0] === "pong"),
        { what: "event_sent" },
      );
      assert.equal(sentNsp, "/");
      // Recovery is on (the default): the event went out with its offset as its last
      // argument, and is told with it, as the package's server tells what it sends.
      assert.deepEqual(sent.slice(0, 2), ["pong", { n: 2 }]);
      assert.equal(sent.length, 3, `${JSON.stringify(sent)}`);
      assert.equal(typeof sent[2], "string");
      assert.ok(!Number.isNaN(Date.parse(sentAt)), `a date: ${sentAt}`);
      // The UI's own emit to the socket (a broadcast to its id) is told too, as the
      // package's server tells it.
      const fromUi = once(user, "from-ui");
      ui.emit("emit", "/", id, "from-ui", { n: 4 });
      assert.deepEqual((await fromUi)[0], { n: 4 });
      const [, , , uiSent] = await waitFor(
        () => ui.heard.find(([e, , sid, a]) => e === "event_sent" && sid === id && a[0] === "from-ui"),
        { what: "event_sent of the UI's emit" },
      );
      assert.deepEqual(uiSent.slice(0, 2), ["from-ui", { n: 4 }]);
      assert.equal(uiSent.length, 3, `${JSON.stringify(uiSent)}`);
      user.disconnect();
      const [, , , reason] = await waitFor(() => ui.heard.find(([e, nsp, sid]) => e === "socket_disconnected" && sid === id), {
        what: "socket_disconnected",
      });
      assert.equal(reason, "client namespace disconnect");
      // A client that starts on polling is updated once it upgrades.
      const upgrading = clients.open(node.url, TRANSPORT_MODES[2]);
      upgrading.connect();
      await connected(upgrading);
      const [, update] = await waitFor(
        () => ui.heard.find(([e, u]) => e === "socket_updated" && u.id === upgrading.id && u.transport),
        { what: "socket_updated with the upgraded transport" },
      );
      assert.deepEqual(update, { id: upgrading.id, nsp: "/", transport: "websocket" });
      // The admin namespace's own events are not told: the UI emits one, then a command
      // whose join is told; the node handles the UI's packets in order, so an
      // `event_received` of the first would be heard before that `room_joined`.
      ui.emit("admin-own-event", { n: 3 });
      ui.emit("join", "/", "after-admin-event", upgrading.id);
      await waitFor(
        () => ui.heard.find(([e, , room, sid]) => e === "room_joined" && room === "after-admin-event" && sid === upgrading.id),
        { what: "room_joined of the marker command" },
      );
      const received = ui.heard.filter(([e]) => e === "event_received").map(([, nsp, , a]) => [nsp, a[0]]);
      assert.ok(!received.some(([nsp]) => nsp === "/admin"), JSON.stringify(received));
    });
  });

  describe("a cluster of two nodes on Redis", () => {
    let redis;
    const nodes = [];
    before(async () => {
      redis = await startRedis();
      for (const name of ["admin-a", "admin-b"]) {
        // admin-b takes a Node server's sessions (`true`); admin-a, as by default, not.
        const keys = name === "admin-b" ? { server_id: name, accept_node_sessions: true } : { server_id: name };
        const node = await startServeNode({ name, adapter: "redis", redisUrl: redis.url, extra: adminConfig(keys) });
        nodes.push(node);
      }
    });
    after(async () => {
      for (const node of nodes) await node.stop().catch(() => {});
      await redis?.stop();
    });

    it("a session from a login on one node logs in on the other (sessions in Redis, the package's keys); one a Node server stored logs in only where accepted", async () => {
      const ui = adminSocket(nodes[0].url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      const [, sessionId] = await heard(ui, "session");
      const elsewhere = adminSocket(nodes[1].url, { sessionId });
      elsewhere.connect();
      await connected(elsewhere);
      await heard(elsewhere, "config");
      const { default: Redis } = await import("ioredis");
      const client = new Redis(redis.url, { lazyConnect: true });
      try {
        await client.connect();
        // The package's key and 24 h; the value marks the credentials (the package
        // stores `true` and only asks whether the key exists).
        assert.match(await client.get(`socket.io-admin#${sessionId}`), /^[0-9a-f]{32}$/);
        const ttl = await client.ttl(`socket.io-admin#${sessionId}`);
        assert.ok(ttl > 86_000 && ttl <= 86_400, `ttl ${ttl}`);
        // A session the package's RedisStore saved (a Node server's login).
        const nodeSession = "0123456789abcdef";
        await client.set(`socket.io-admin#${nodeSession}`, "true", "EX", 60);
        const fromNode = adminSocket(nodes[1].url, { sessionId: nodeSession });
        fromNode.connect();
        await connected(fromNode);
        // Not where `admin.accept_node_sessions` is off (the default): any app sharing
        // the Redis with the package's store writes such a `true`.
        const refused = adminSocket(nodes[0].url, { sessionId: nodeSession });
        refused.connect();
        const [err] = await once(refused, "connect_error");
        assert.equal(err.message, "invalid credentials");
      } finally {
        client.disconnect();
      }
    });

    it("a UI on one node gets every node's server_stats", async () => {
      const ui = adminSocket(nodes[0].url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      await waitFor(
        () => {
          const ids = new Set(ui.heard.filter(([e]) => e === "server_stats").map(([, s]) => s.serverId));
          return ids.has("admin-a") && ids.has("admin-b");
        },
        { what: "server_stats from both nodes", timeout: 10_000 },
      );
    });
  });
  // Clients may make up to `socketio.max_pattern_namespaces` namespaces from a pattern.
  // Each node's `server_stats` listed every one every 2 s, through Redis to every node
  // and UI (over a megabyte at 10,000), and a UI's `all_sockets` asked every node about
  // each in turn. A node now shows the declared namespaces and those a pattern made that
  // hold sockets, the fullest first, at most 100. Here: 150 with a socket (three
  // connections of 50 namespaces), three of them with two or three, and 20 emptied ones
  // that recovery keeps.
  describe("namespaces made from a pattern, shown bounded", () => {
    let node;
    const managers = [];
    before(async () => {
      node = await startServeNode({
        name: "admin-patterns",
        adapter: "memory",
        // Recovery is on (`startServeNode`): emptied namespaces stay for its window.
        extra: `${adminConfig({ mode: "development" })}\n[[namespaces]]\npattern = "/t-*"\n`,
      });
    });
    after(async () => {
      for (const manager of managers) manager.engine?.close();
      await node?.stop();
    });

    /** Connects one connection's sockets to `names`; the sockets. */
    async function connectAll(names) {
      const manager = new Manager(node.url, { reconnection: false, autoConnect: false, ...WEBSOCKET.opts });
      managers.push(manager);
      const sockets = names.map((name) => manager.socket(name));
      for (const socket of sockets) socket.connect();
      await Promise.all(sockets.map((socket) => connected(socket)));
      return sockets;
    }

    it("server_stats and all_sockets show 100 namespaces: the declared ones, then the fullest", async () => {
      const emptied = await connectAll(Array.from({ length: 20 }, (_, i) => `/t-gone-${i}`));
      for (const socket of emptied) socket.disconnect();
      for (let c = 0; c < 3; c++) {
        await connectAll(Array.from({ length: 50 }, (_, i) => `/t-${c}-${i}`));
      }
      // A connection has one socket per namespace: more sockets take more connections.
      const fuller = { "/t-0-7": 3, "/t-1-3": 2, "/t-2-9": 2 };
      await connectAll(["/t-0-7", "/t-1-3", "/t-2-9"]);
      await connectAll(["/t-0-7"]);
      // The node has seen the emptied namespaces' sockets leave (they stay, empty, for
      // the recovery window) and the fuller ones' sockets arrive.
      await waitFor(
        async () => {
          const res = await node.api("GET", "/api/v1/namespaces");
          const count = new Map(res.body.namespaces.map((n) => [n.name, n.sockets]));
          return (
            Array.from({ length: 20 }, (_, i) => count.get(`/t-gone-${i}`)).every((n) => n === 0) &&
            Object.entries(fuller).every(([name, n]) => count.get(name) === n)
          );
        },
        { what: "the API to count the emptied and the fuller namespaces' sockets" },
      );
      const ui = adminSocket(node.url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      const [, stats] = await heard(ui, "server_stats", 5_000);
      const names = stats.namespaces.map((n) => n.name);
      // 152 would qualify (the 2 declared, 150 of the pattern's holding sockets).
      assert.equal(names.length, 100, JSON.stringify(names));
      assert.deepEqual(names.slice(0, 2).sort(), ["/", "/admin"], "the declared ones first");
      const fromPattern = stats.namespaces.slice(2);
      assert.ok(
        fromPattern.every((n) => n.name.startsWith("/t-") && !n.name.startsWith("/t-gone-") && n.socketsCount >= 1),
        JSON.stringify(fromPattern),
      );
      // The fullest first: the three fuller ones, with their counts, then those of one.
      const counts = fromPattern.map((n) => n.socketsCount);
      assert.deepEqual(counts, [...counts].sort((x, y) => y - x), "fullest first");
      assert.deepEqual(
        Object.fromEntries(fromPattern.slice(0, 3).map((n) => [n.name, n.socketsCount])),
        fuller,
      );
      // The sockets listed are those of the namespaces shown (each one's sockets).
      const [, sockets] = await heard(ui, "all_sockets", 15_000);
      const listed = new Map();
      for (const s of sockets) listed.set(s.nsp, (listed.get(s.nsp) ?? 0) + 1);
      const shownWithSockets = stats.namespaces.filter((n) => n.socketsCount > 0);
      assert.deepEqual(
        Object.fromEntries([...listed].sort()),
        Object.fromEntries(shownWithSockets.map((n) => [n.name, n.socketsCount]).sort()),
      );
    });
  });

  // Development mode's list of sockets on connect is one `all_sockets` frame: past the
  // UI's outbound queue (`queue.max_bytes`) it closed the UI as a slow consumer on every
  // connect, and a node's answer past 16 MiB was dropped by the asking node. It now
  // lists the first sockets by id, up to 1,000 or 1 MiB of JSON, and asks each node for
  // no more. Here node B holds 350 sockets of about 7 KB each (2.5 MB), the UI on node A
  // has a 2 MiB queue.
  describe("development mode's list of sockets across a cluster, bounded", () => {
    const PER_NODE = 350;
    const PAD = "x".repeat(7000);
    let redis;
    const nodes = [];
    const ids = [];
    before(async () => {
      redis = await startRedis();
      const extra = `[queue]\nmax_bytes = ${2 << 20}\n\n${adminConfig({ mode: "development" })}`;
      for (const name of ["admin-list-a", "admin-list-b"]) {
        nodes.push(await startServeNode({ name, adapter: "redis", redisUrl: redis.url, extra }));
      }
      for (let i = 0; i < PER_NODE; i++) {
        const socket = clients.open(nodes[1].url, WEBSOCKET, { extraHeaders: { "x-pad": PAD } });
        socket.connect();
        await connected(socket);
        ids.push(socket.id);
      }
      ids.sort();
    });
    after(async () => {
      clients.closeAll();
      for (const node of nodes) await node.stop().catch(() => {});
      await redis?.stop();
    });

    it("lists the first sockets by id within 1 MiB, and the UI stays connected", async () => {
      const ui = adminSocket(nodes[0].url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      const [, sockets] = await heard(ui, "all_sockets", 15_000);
      const listed = sockets.filter((s) => s.nsp === "/").map((s) => s.id);
      const bytes = Buffer.byteLength(JSON.stringify(sockets));
      console.log(`# all_sockets: ${listed.length} of ${PER_NODE} sockets, ${bytes} B`);
      assert.ok(bytes <= 1 << 20, `${bytes} B listed`);
      assert.ok(listed.length > 0 && listed.length < PER_NODE, `${listed.length} listed`);
      assert.deepEqual(listed, ids.slice(0, listed.length), "the first by id, each once");
      // Still connected: a later round of stats arrives.
      const seen = ui.heard.length;
      await waitFor(() => ui.heard.slice(seen).some(([e]) => e === "server_stats"), {
        what: "server_stats after the list",
        timeout: 10_000,
      });
      assert.equal(ui.connected, true);
    });
  });
});
