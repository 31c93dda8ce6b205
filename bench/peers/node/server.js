// The benchmark workload served by Node.js Socket.IO 4.8 with default settings, alone
// (in-memory adapter) or as one node of a cluster over Redis with the official adapters.
//
// Same contract as `protocol_fixture cluster` for what the benchmarks use, namespace "/":
// `join` (room) joins and acks true; `broadcast` (room, event, ...args) emits `event`
// with `args` to the room (on every node of the cluster) and acks true;
// `message-with-ack` (...args) acks the same args.
//
// Usage: node server.js [--port N] [--host H] [--adapter memory|redis|redis-streams]
//                       [--redis-url URL] [--name NAME]
// `redis` is `@socket.io/redis-adapter` (pub/sub, two ioredis connections),
// `redis-streams` is `@socket.io/redis-streams-adapter` (one ioredis connection), both at
// their default options. Prints exactly `listening on HOST:PORT` once bound and, with a
// Redis adapter, once Redis shows this process subscribed (so it receives every broadcast
// published after that line); exits on SIGINT/SIGTERM.
"use strict";

const { createServer } = require("node:http");
const { parseArgs } = require("node:util");
const { setTimeout: sleep } = require("node:timers/promises");
const { Server } = require("socket.io");

/** Start-up: give up if Redis does not show our subscriptions within this time. */
const READY_TIMEOUT_MS = 10_000;

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    adapter: { type: "string", default: "memory" },
    "redis-url": { type: "string" },
    name: { type: "string", default: `node-${process.pid}` },
  },
});

const log = (...args) => process.stderr.write(`[${opts.name}] ${args.join(" ")}\n`);

// Splits a trailing acknowledgement callback off an event's arguments.
function splitAck(args) {
  const last = args[args.length - 1];
  return typeof last === "function" ? [args.slice(0, -1), args.pop()] : [args, () => {}];
}

// The adapter named on the command line and the Redis connections it uses.
function makeAdapter() {
  if (opts.adapter === "memory") return { adapter: undefined, clients: [] };
  if (opts.adapter !== "redis" && opts.adapter !== "redis-streams") {
    throw new Error(`unknown --adapter ${opts.adapter} (memory, redis, redis-streams)`);
  }
  const url = opts["redis-url"];
  if (!url) throw new Error(`--adapter ${opts.adapter} needs --redis-url`);
  const { Redis } = require("ioredis");
  const pub = new Redis(url, { connectionName: connectionName() });
  pub.on("error", (err) => log("redis:", err.message));
  if (opts.adapter === "redis-streams") {
    const { createAdapter } = require("@socket.io/redis-streams-adapter");
    return { adapter: createAdapter(pub), clients: [pub] };
  }
  const { createAdapter } = require("@socket.io/redis-adapter");
  const sub = pub.duplicate();
  sub.on("error", (err) => log("redis (sub):", err.message));
  return { adapter: createAdapter(pub, sub), clients: [pub, sub] };
}

// Name of this process's Redis connections, to find them in CLIENT LIST.
function connectionName() {
  return `bench-${process.pid}`;
}

// Resolves once Redis shows this process's adapter connections subscribed (pub/sub:
// a pattern and the request/response channels; streams: reading the stream).
async function subscribed(client) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const name = connectionName();
  for (;;) {
    const mine = String(await client.client("LIST"))
      .split("\n")
      .filter((line) => line.includes(` name=${name} `));
    const field = (line, key) => Number((new RegExp(` ${key}=(\\d+)`).exec(line) ?? [])[1] ?? 0);
    const ready =
      opts.adapter === "redis"
        ? mine.some((l) => field(l, "psub") >= 1 && field(l, "sub") >= 3)
        : mine.some((l) => / cmd=xread\b/.test(l));
    if (ready) return;
    if (Date.now() > deadline) throw new Error("the adapter did not subscribe to Redis in time");
    await sleep(20);
  }
}

async function main() {
  const { adapter, clients } = makeAdapter();
  const httpServer = createServer();
  const io = new Server(httpServer, adapter ? { adapter } : {});

  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack(true);
    });
    socket.on("broadcast", (...raw) => {
      const [[room, event, ...args], ack] = splitAck(raw);
      io.to(room).emit(event, ...args);
      ack(true);
    });
    socket.on("message-with-ack", (...raw) => {
      const [args, ack] = splitAck(raw);
      ack(...args);
    });
  });

  await new Promise((resolve, reject) => {
    httpServer.once("error", (err) =>
      reject(new Error(`cannot listen on ${opts.host}:${opts.port}: ${err.message}`)),
    );
    httpServer.listen(Number(opts.port), opts.host, resolve);
  });
  if (clients.length) await subscribed(clients[0]);
  const { address, port } = httpServer.address();
  process.stdout.write(`listening on ${address}:${port}\n`);

  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      io.close();
      for (const client of clients) client.disconnect();
      process.exit(0);
    });
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
