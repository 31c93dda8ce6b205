#!/usr/bin/env node
// The reference implementation of the cluster fixture contract (CONTRACT.md beside this
// file) on Node.js Socket.IO 4.8 with the official Redis adapters. The cluster tests run
// it as a cluster member next to Switchboard nodes, and every test can be run against
// an all-Node cluster by pointing CLUSTER_SWITCHBOARD_CMD at it, to check the tests.
//
//   node node-server.mjs [cluster] --port 0 --host 127.0.0.1 --adapter redis-streams \
//        --redis-url redis://127.0.0.1:6379 --name node-1 --recovery
//
// `--adapter redis-sharded [--subscription-mode static|dynamic|dynamic-private]` is the
// sharded Pub/Sub adapter (`createShardedAdapter`), and a `--redis-url` of the form
// `redis+cluster://HOST:PORT,HOST:PORT,...` puts any Redis adapter on a Redis Cluster
// (ioredis `Cluster` clients; the hosts are seeds).

import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { Server } from "socket.io";
import { Cluster, Redis } from "ioredis";
import { createAdapter as createRedisAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";

/** As the contract says: sessions are kept this long for recovery. */
const MAX_DISCONNECTION_DURATION_MS = 120_000;
/** `broadcast-with-ack` waits this long for the clients' acks. */
const BROADCAST_ACK_TIMEOUT_MS = 3_000;
/** `request-ack` waits this long for the client's ack. */
const REQUEST_ACK_TIMEOUT_MS = 5_000;
/** SIGTERM: exit after this long even if connections or Redis are slow to close. */
const DRAIN_DEADLINE_MS = 5_000;
/** Start-up: give up if Redis does not show our subscriptions within this time. */
const READY_TIMEOUT_MS = 10_000;
const REDIS_ADAPTERS = ["redis", "redis-sharded", "redis-streams"];
/** `createShardedAdapter`'s `subscriptionMode`s; its default is `dynamic`. */
const SUBSCRIPTION_MODES = ["static", "dynamic", "dynamic-private"];

const { values: opts } = parseArgs({
  allowPositionals: true, // `cluster`, as the Rust fixture takes its mode
  options: {
    port: { type: "string", default: "3000" },
    host: { type: "string", default: "127.0.0.1" },
    adapter: { type: "string", default: "memory" },
    "redis-url": { type: "string" },
    name: { type: "string" },
    recovery: { type: "boolean", default: false },
    "subscription-mode": { type: "string" },
  },
});

const log = (...args) => process.stderr.write(`[node-server ${opts.name ?? ""}] ${args.join(" ")}\n`);

async function main() {
  const redisClients = [];
  const connectionName = `sio-${process.pid}`;
  let adapter;
  const mode = opts["subscription-mode"];
  if (mode !== undefined && opts.adapter !== "redis-sharded") {
    throw new Error(`--subscription-mode is for --adapter redis-sharded only (not ${opts.adapter})`);
  }
  if (mode !== undefined && !SUBSCRIPTION_MODES.includes(mode)) {
    throw new Error(`unknown --subscription-mode ${mode} (${SUBSCRIPTION_MODES.join(", ")})`);
  }
  if (REDIS_ADAPTERS.includes(opts.adapter)) {
    const url = opts["redis-url"];
    if (!url) throw new Error(`--adapter ${opts.adapter} needs --redis-url`);
    const pub = redisClient(url, connectionName);
    pub.on("error", (err) => log("redis:", err.message));
    redisClients.push(pub);
    if (opts.adapter === "redis-streams") {
      adapter = createStreamsAdapter(pub);
    } else {
      const sub = pub.duplicate();
      sub.on("error", (err) => log("redis (sub):", err.message));
      redisClients.push(sub);
      adapter =
        opts.adapter === "redis"
          ? createRedisAdapter(pub, sub)
          : createShardedAdapter(pub, sub, { subscriptionMode: mode ?? "dynamic" });
    }
  } else if (opts.adapter !== "memory") {
    throw new Error(`unknown --adapter ${opts.adapter} (memory, ${REDIS_ADAPTERS.join(", ")})`);
  }

  const httpServer = createServer();
  const io = new Server(httpServer, {
    cors: { origin: "*" },
    allowRequest: (req, callback) => callback(null, req.headers["x-conformance-deny"] !== "1"),
    ...(adapter ? { adapter } : {}),
    ...(opts.recovery
      ? {
          connectionStateRecovery: {
            maxDisconnectionDuration: MAX_DISCONNECTION_DURATION_MS,
            skipMiddlewares: true,
          },
        }
      : {}),
  });

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(Number(opts.port), opts.host, resolve);
  });
  const { address, port } = httpServer.address();
  const name = opts.name ?? `node-${port}`;
  serve(io, name);

  if (redisClients.length) await subscribed(redisClients[0], connectionName, opts.adapter);
  process.stdout.write(`listening on ${address}:${port}\n`);

  let draining = false;
  const drain = async () => {
    if (draining) return;
    draining = true;
    setTimeout(() => process.exit(0), DRAIN_DEADLINE_MS).unref();
    // Closes every socket with reason "server shutting down", which Node keeps
    // recoverable (the streams adapter stores the session in Redis), then the engine.
    await io.close();
    // QUIT is queued behind the session writes, so they reach Redis first.
    await Promise.allSettled(redisClients.map((c) => c.quit()));
    process.exit(0);
  };
  process.on("SIGTERM", drain);
  process.on("SIGINT", drain);
}

/**
 * The adapter's Redis client for `url`: `redis://...` (ioredis `Redis`), or a Redis
 * Cluster for `redis+cluster://HOST:PORT,HOST:PORT,...` (ioredis `Cluster` with those
 * seeds, sharded subscribers on, so SSUBSCRIBE follows each channel's slot).
 */
function redisClient(url, connectionName) {
  const scheme = "redis+cluster://";
  if (!url.toLowerCase().startsWith(scheme)) return new Redis(url, { connectionName });
  let authority = url.slice(scheme.length).split(/[/?#]/)[0];
  const auth = {};
  const at = authority.lastIndexOf("@");
  if (at !== -1) {
    const [username, password] = authority.slice(0, at).split(":");
    if (password === undefined) auth.password = decodeURIComponent(username);
    else {
      if (username) auth.username = decodeURIComponent(username);
      auth.password = decodeURIComponent(password);
    }
    authority = authority.slice(at + 1);
  }
  const seeds = authority.split(",").map((hostPort) => {
    const m = /^\[?(.*?)\]?(?::(\d+))?$/.exec(hostPort);
    return { host: m[1], port: Number(m[2] ?? 6379) };
  });
  if (!seeds.length || seeds.some((s) => !s.host)) throw new Error(`no seeds in --redis-url ${url}`);
  // `lazyConnect: false`: a sharded subscriber connects to its master at start-up rather
  // than when the first channel of that master's slots is subscribed, so a room joined
  // later is subscribed at once (not after a connect that a publish may overtake).
  return new Cluster(seeds, {
    shardedSubscribers: true,
    redisOptions: { connectionName, lazyConnect: false, ...auth },
  });
}

/**
 * `CLIENT LIST` lines of every Redis server `client` talks to: the one server, or every
 * node (masters and replicas) of a Redis Cluster, since a cluster client's subscriber
 * connections may be on any of them.
 */
async function clientList(client) {
  const nodes = client.isCluster ? client.nodes("all") : [client];
  const lists = await Promise.all(nodes.map((n) => n.client("LIST").catch(() => "")));
  return lists.flatMap((list) => String(list).split("\n"));
}

/**
 * Resolves once Redis shows this process's adapter connections subscribed (and, for
 * streams, reading the stream), so the node receives cluster traffic from the moment
 * it prints `listening on`. A Redis Cluster client names its connections
 * `ioredis-cluster(ROLE):NAME`.
 */
async function subscribed(client, connectionName, adapter) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const ours = new RegExp(` name=(?:\\S*:)?${connectionName.replace(/[^\w-]/g, "\\$&")} `);
  for (;;) {
    const list = (await clientList(client)).filter((line) => ours.test(line));
    const field = (line, key) => Number((new RegExp(` ${key}=(\\d+)`).exec(line) ?? [])[1] ?? 0);
    let ready;
    if (adapter === "redis") {
      ready = list.some((l) => field(l, "psub") >= 1 && field(l, "sub") >= 3);
    } else if (adapter === "redis-sharded") {
      // `socket.io#/#` and `socket.io#/#<uid>#`, on one connection per master that
      // serves one of them (the adapter does not wait for its SSUBSCRIBE replies).
      ready = list.reduce((sum, l) => sum + field(l, "ssub"), 0) >= 2;
    } else {
      ready = list.some((l) => field(l, "sub") >= 2) && list.some((l) => / cmd=xread\b/.test(l));
    }
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`adapter ${adapter} did not subscribe to Redis in time`);
    await sleep(20);
  }
}

/** Splits a trailing acknowledgement callback off an event's arguments. */
function splitAck(args) {
  const ack = typeof args.at(-1) === "function" ? args.pop() : undefined;
  return [args, ack];
}

/** Acks with the handler's result (awaited); errors become `{ error }`. */
function on(socket, event, handler) {
  socket.on(event, async (...raw) => {
    const [args, ack] = splitAck(raw);
    let result;
    try {
      result = await handler(...args);
    } catch (err) {
      result = { error: err?.message ?? String(err) };
    }
    ack?.(result);
  });
}

const byJson = (a, b) => {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** `io.in(room)`, or the whole namespace for `null`. */
const target = (io, room) => (room === null || room === undefined ? io : io.in(room));

function serve(io, name) {
  const nsp = io.of("/");

  // Any server-side event from another node: `whoami` is answered with our name, every
  // other one is shown to this node's clients as `server-side` (event, ...args).
  nsp._onServerSideEmit = (packet) => {
    const [[event, ...args], ack] = splitAck([...packet]);
    if (event === "whoami") return ack?.(name);
    io.local.emit("server-side", event, ...args);
    ack?.(true);
  };

  io.on("connection", (socket) => {
    socket.data = { ...socket.data, node: name };
    // With recovery on, Node gives this event an offset like any other; `quiet` keeps a
    // client without any event (so without an offset) for the tests that need one.
    if (socket.handshake.auth?.quiet !== true) socket.emit("auth", socket.handshake.auth);

    on(socket, "join", (room) => (socket.join(room), true));
    on(socket, "leave", (room) => (socket.leave(room), true));
    on(socket, "rooms", () => [...socket.rooms]);
    on(socket, "whoami", () => name);
    on(socket, "broadcast", (room, event, ...args) => (io.to(room).emit(event, ...args), true));
    on(socket, "broadcast-except-self", (room, event, ...args) => {
      socket.to(room).emit(event, ...args);
      return true;
    });
    // `io.to(room).except(rooms)`, then `.volatile` / `.local` as the flags ask.
    on(socket, "broadcast-flags", (room, flags, event, ...args) => {
      let op = (room === null || room === undefined ? io.of("/") : io.to(room)).except(flags?.except ?? []);
      if (flags?.volatile === true) op = op.volatile;
      if (flags?.local === true) op = op.local;
      op.emit(event, ...args);
      return true;
    });
    on(socket, "broadcast-with-ack", async (room, event, ...args) => {
      try {
        const replies = await io.to(room).timeout(BROADCAST_ACK_TIMEOUT_MS).emitWithAck(event, ...args);
        return replies.sort(byJson);
      } catch {
        return { error: "timeout" };
      }
    });
    on(socket, "fetch-sockets", async (room) => {
      const sockets = await target(io, room).fetchSockets();
      return sockets
        .map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    });
    on(socket, "fetch-handshake-queries", async (room) => {
      const sockets = await target(io, room).fetchSockets();
      return sockets
        .map((s) => ({ id: s.id, query: s.handshake.query }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    });
    on(socket, "sockets-join", (room, newRoom) => (target(io, room).socketsJoin(newRoom), true));
    on(socket, "sockets-leave", (room, oldRoom) => (target(io, room).socketsLeave(oldRoom), true));
    socket.on("disconnect-sockets", (...raw) => {
      const [[room, close], ack] = splitAck(raw);
      ack?.(true); // first, in case this socket is one of those disconnected
      target(io, room).disconnectSockets(close === true);
    });
    on(socket, "server-side-emit", (event, ...args) => (io.serverSideEmit(event, ...args), true));
    on(socket, "server-side-emit-with-ack", async () => {
      try {
        return (await io.serverSideEmitWithAck("whoami")).sort(byJson);
      } catch (err) {
        return { error: "timeout", responses: (err.responses ?? []).sort(byJson) };
      }
    });
    on(socket, "server-count", () => io.of("/").adapter.serverCount());
    // Node relays no WebSocket upgrade (it needs sticky sessions).
    on(socket, "upgrades-relayed", () => 0);

    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("message-with-ack", (...raw) => {
      const [args, ack] = splitAck(raw);
      ack?.(...args);
    });
    socket.on("request-ack", (event, ...raw) => {
      const [args] = splitAck(raw);
      socket.timeout(REQUEST_ACK_TIMEOUT_MS).emit(event, ...args, (err, ...reply) => {
        socket.emit("request-ack-result", err ? { error: "timeout" } : reply);
      });
    });
    socket.on("disconnect-me", () => socket.disconnect());
  });
}

main().catch((err) => {
  log("fatal:", err?.stack ?? err);
  process.exit(1);
});
