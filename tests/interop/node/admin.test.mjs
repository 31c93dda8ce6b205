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
      assert.ok(stats.clientsCount >= 2, `clientsCount ${stats.clientsCount}`);
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
      const gone = once(user, "disconnect");
      ui.emit("_disconnect", "/", false, "picked");
      assert.equal((await gone)[0], "io server disconnect");
      // A namespace this node does not have is not created by a command.
      ui.emit("join", "/made-up", "x");
      const res = await node.api("GET", "/api/v1/namespaces");
      assert.ok(!res.body.namespaces.some((n) => n.name === "/made-up"), JSON.stringify(res.body));
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
      ui.emit("_disconnect", "/", true);
      // The user stays: wait for a stats round trip, then check.
      await heard(ui, "server_stats", 5_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(user.connected, true);
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
    let node;
    before(async () => {
      node = await startServeNode({ name: "admin-dev", adapter: "memory", extra: adminConfig({ mode: "development" }) });
    });
    after(async () => node?.stop());

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
      // An emit to this socket from the UI goes through the adapter, not socket by socket.
      user.disconnect();
      const [, , , reason] = await waitFor(() => ui.heard.find(([e, nsp, sid]) => e === "socket_disconnected" && sid === id), {
        what: "socket_disconnected",
      });
      assert.equal(reason, "client namespace disconnect");
      // The admin namespace's own events are not told.
      assert.ok(!ui.heard.some(([e, nsp]) => e === "event_received" && nsp === "/admin"));
      // A client that starts on polling is updated once it upgrades.
      const upgrading = clients.open(node.url, TRANSPORT_MODES[2]);
      upgrading.connect();
      await connected(upgrading);
      const [, update] = await waitFor(
        () => ui.heard.find(([e, u]) => e === "socket_updated" && u.id === upgrading.id && u.transport),
        { what: "socket_updated with the upgraded transport" },
      );
      assert.deepEqual(update, { id: upgrading.id, nsp: "/", transport: "websocket" });
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
  // connections of 50 namespaces), and 20 emptied ones that recovery keeps.
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

    it("server_stats and all_sockets show at most 100 namespaces: the declared ones, then the fullest", async () => {
      const emptied = await connectAll(Array.from({ length: 20 }, (_, i) => `/t-gone-${i}`));
      for (const socket of emptied) socket.disconnect();
      for (let c = 0; c < 3; c++) {
        await connectAll(Array.from({ length: 50 }, (_, i) => `/t-${c}-${i}`));
      }
      const ui = adminSocket(node.url, { username: "admin", password: PASSWORD });
      ui.connect();
      await connected(ui);
      const [, stats] = await heard(ui, "server_stats", 5_000);
      const names = stats.namespaces.map((n) => n.name);
      assert.ok(names.length <= 100, `${names.length} namespaces shown`);
      assert.ok(names.includes("/") && names.includes("/admin"), JSON.stringify(names.slice(0, 5)));
      assert.ok(!names.some((n) => n.startsWith("/t-gone-")), "emptied pattern namespaces are not shown");
      const fromPattern = stats.namespaces.filter((n) => n.name.startsWith("/t-"));
      assert.ok(fromPattern.length > 0 && fromPattern.every((n) => n.socketsCount >= 1), JSON.stringify(fromPattern.slice(0, 3)));
      const [, sockets] = await heard(ui, "all_sockets", 15_000);
      const listedNamespaces = new Set(sockets.map((s) => s.nsp));
      assert.ok(listedNamespaces.size <= 100, `${listedNamespaces.size} namespaces listed`);
      assert.ok(listedNamespaces.size > 1, `${listedNamespaces.size} namespaces listed`);
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
