// A cluster of the shipped `switchboard serve` binary (not the protocol fixture) for
// the recovery tests: N nodes on one redis-server with `cluster.adapter =
// "redis-streams"` and `[recovery] enabled = true`, the HTTP API on for publishing
// (`POST /api/v1/emit`), and HAProxy in front whose routing the test sets, so a client
// that reconnects lands on the node the test chose. Each node can be stopped, killed
// and restarted on its port.
//
// A single node with the default memory adapter is the same `ServeNode` with
// `adapter: "memory"`. Below the cluster: the client-side steps the recovery tests
// share (recording numbered events with their offsets, dropping a connection so that
// the server keeps the session).
//
// Processes are started by the existing helpers: `startSwitchboard` (lib/switchboard.mjs)
// for the nodes, `startHaproxy` (cluster/haproxy.mjs) for the balancer; the test brings
// its own Redis (cluster/redis.mjs), which it may stop, kill or wipe.

import { setTimeout as sleep } from "node:timers/promises";
import { startHaproxy } from "../cluster/haproxy.mjs";
import { withoutOffset } from "../cluster/support.mjs";
import { connected, once } from "./client.mjs";
import { startSwitchboard } from "./switchboard.mjs";
import { waitFor } from "./wait.mjs";

/** The API key every node accepts (at least 16 characters). */
export const API_KEY = "recovery-tests-key-0123456789";
/** `cluster.secret`: the same on every node, at least 32 bytes. */
export const CLUSTER_SECRET = "recovery-tests-cluster-secret-0123456789abcdef";
/** A restart on the same port retries this long while the old listener goes away. */
const REBIND_MS = 5_000;

/**
 * TOML for one node: `[recovery] enabled = true`, the API on with `API_KEY`, and with
 * `adapter: "redis-streams"` (the default) the `[cluster]` table for `redisUrl`; with
 * `adapter: "memory"` no `[cluster]` table (one node). `cluster`, `recovery`, `engine`
 * and `api` hold extra keys of those tables (numbers, strings, booleans); `extra` is
 * appended verbatim (e.g. `[[namespaces]]` rules). Unset keys keep their defaults, and
 * namespace `/` is open to anyone.
 */
export function serveConfig({
  name,
  adapter = "redis-streams",
  redisUrl,
  cluster = {},
  recovery = {},
  engine = {},
  api = {},
  extra = "",
}) {
  const table = (header, keys) =>
    [`[${header}]`, ...Object.entries(keys).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)].join("\n");
  const clustered = adapter !== "memory";
  return [
    table("engine", engine),
    clustered
      ? table("cluster", {
          adapter,
          redis_url: redisUrl,
          secret: CLUSTER_SECRET,
          node_name: name,
          ...cluster,
        })
      : "",
    table("recovery", { enabled: true, ...recovery }),
    // Rate limiting off: a test publishes as fast as it likes.
    table("api", { keys: [API_KEY], rate_limit_per_second: 0, ...api }),
    extra,
    "",
  ].join("\n\n");
}

/** One `switchboard serve` node; its port and name survive a restart. */
export class ServeNode {
  constructor({ name, config }) {
    this.name = name;
    this.config = config;
    this.port = 0;
    this.server = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get running() {
    return Boolean(this.server?.running);
  }

  /**
   * Starts the process (on the node's port after the first start) and resolves once it
   * is ready, or only listening with `ready: false` (Redis down).
   */
  async start({ ready = true } = {}) {
    const deadline = Date.now() + REBIND_MS;
    for (;;) {
      try {
        this.server = await startSwitchboard({ config: this.config, port: this.port, ready });
        this.port = this.server.port;
        return;
      } catch (err) {
        if (this.port === 0 || !err.exitedEarly || Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
  }

  /** SIGTERM: drains and must exit 0 (see `Switchboard.stop`). */
  async stop() {
    await this.server?.stop();
  }

  /** SIGKILL: a crash; the node's sessions stay only where it had written them. */
  async kill() {
    await this.server?.kill();
  }

  async restart(opts) {
    if (this.running) await this.stop();
    await this.start(opts);
  }

  /** `/metrics` as a map (see `Switchboard.metrics`). */
  metrics() {
    return this.server.metrics();
  }

  /** `method path` on this node's API with the cluster's key: `{ status, body }`. */
  api(method, path, body) {
    return this.server.api(API_KEY, method, path, body);
  }

  /**
   * `POST /api/v1/emit` on this node: `event` with `args` to every socket of `/` (or
   * to `select`'s `rooms` / `socket_ids`). Resolves with the answer; throws unless it
   * is 200, so a test never mistakes a refused publish for a published event.
   */
  async emit(event, args, select = {}) {
    const res = await this.api("POST", "/api/v1/emit", { event, args, ...select });
    if (res.status !== 200) {
      throw new Error(`emit ${event} on ${this.name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  /** Sockets of namespace `/` connected to this node itself (its metrics). */
  async localSockets() {
    return (await this.metrics()).get('switchboard_sockets{namespace="/"}') ?? 0;
  }

  /** Whether `GET /api/v1/namespaces/%2F/sockets/{id}` finds the socket anywhere. */
  async hasSocket(id) {
    const res = await this.api("GET", `/api/v1/namespaces/%2F/sockets/${encodeURIComponent(id)}`);
    if (res.status === 200) return true;
    if (res.status === 404 && res.body?.code === "unknown_socket") return false;
    throw new Error(`socket lookup on ${this.name}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /** Waits until the cluster, asked here, no longer lists socket `id`. */
  async waitUntilGone(id) {
    await waitFor(async () => !(await this.hasSocket(id)), {
      what: `${this.name} to see socket ${id} gone`,
    });
  }
}

/**
 * Starts `nodes` Switchboard nodes on `redisUrl` (named `sb-1`, `sb-2`, …; `config`
 * takes the options of `serveConfig`, the same for every node) and HAProxy in front
 * of them. Resolves with a `ServeCluster`.
 */
export async function startServeCluster({ redisUrl, nodes = 2, config = {} }) {
  const members = [];
  const cluster = new ServeCluster(members);
  try {
    for (let i = 1; i <= nodes; i++) {
      const name = `sb-${i}`;
      const node = new ServeNode({ name, config: serveConfig({ name, redisUrl, ...config }) });
      members.push(node);
      await node.start();
    }
    cluster.lb = await startHaproxy(members.map((n) => n.port));
    for (const node of members) await cluster.lb.waitUntil(node.port, true);
  } catch (err) {
    // Whether each node still runs, and what it said: a node HAProxy never sees up.
    for (const node of members) {
      const stderr = node.server?.stderr ?? "";
      err.message += `\n${node.name} on port ${node.port}: ${node.running ? "running" : "not running"}; stderr tail:\n${stderr.slice(-1500)}`;
    }
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}

export class ServeCluster {
  constructor(nodes) {
    this.nodes = nodes;
    this.lb = null;
  }

  /** The balancer's URL, for clients. */
  get url() {
    return this.lb.url;
  }

  /**
   * Sends every new request through the balancer to `node` alone: the others are put in
   * maintenance (HAProxy's runtime API), `node` back in rotation.
   */
  async routeTo(node) {
    for (const other of this.nodes) {
      if (other !== node) await this.lb.setState(other.port, "maint");
    }
    await this.lb.setState(node.port, "ready");
    await this.lb.waitUntil(node.port, true);
  }

  /** Waits until every running node answers `/health/ready` with 200 (Redis reachable). */
  async waitUntilReady() {
    for (const node of this.nodes.filter((n) => n.running)) {
      await waitFor(async () => (await node.server.status("/health/ready")) === 200, {
        what: `${node.name} to be ready`,
      });
    }
  }

  /**
   * Stops the balancer and every node still running (SIGTERM; a node that had died on
   * its own makes this throw, after everything else was stopped).
   */
  async stop() {
    const errors = [];
    try {
      await this.lb?.stop();
    } catch (err) {
      errors.push(err);
    }
    for (const node of this.nodes) {
      if (!node.server || node.server.fixture.stopRequested) continue;
      try {
        await node.stop();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw errors[0];
  }
}

/** Starts one node with `serveConfig(options)` (e.g. `adapter: "memory"`) and resolves once it is ready. */
export async function startServeNode(options) {
  const node = new ServeNode({ name: options.name, config: serveConfig(options) });
  await node.start();
  return node;
}

/**
 * Opens a client on `url` with `clients.open` (so `clients.closeAll()` closes it;
 * reconnection off, `mode` one of lib/client.mjs's transport modes) and resolves with
 * its socket once it is connected. Unlike `Clients.connect` it does not wait for the
 * fixture's `auth` event, which `switchboard serve` never sends.
 */
export async function connectClient(clients, url, mode, opts = {}) {
  const socket = clients.open(url, mode, opts);
  socket.connect();
  await connected(socket);
  return socket;
}

/**
 * Records every `event` the socket receives, in order, as `{ n, offset }`: `n` from the
 * event's object argument (API emits here send `{n}`, relays `room, {n}`), `offset` the
 * trailing string recovery appends (`null` without one).
 */
export function trackEvents(socket, event) {
  const got = [];
  socket.on(event, (...args) => {
    const data = withoutOffset(args).find((a) => typeof a === "object" && a !== null);
    got.push({ n: data?.n, offset: typeof args.at(-1) === "string" ? args.at(-1) : null });
  });
  return got;
}

/** The numbers of events recorded by `trackEvents`. */
export const eventNumbers = (got) => got.map((e) => e.n);

/**
 * Closes the client's connection as a network failure would (`socket.io.engine.close()`:
 * the server keeps the session; a Socket.IO disconnect would end it) and waits until
 * `node` (any node of the cluster) no longer lists the socket, so its session was saved.
 */
export async function dropConnection(socket, node) {
  const id = socket.id;
  const gone = once(socket, "disconnect");
  socket.io.engine.close();
  await gone;
  await node.waitUntilGone(id);
}

/**
 * Publishes numbered `tick` events (`{n}`, from 1) to `room` through the HTTP API,
 * alternately through each of `nodes` directly, each awaited before the next (so the
 * stream's order is the numbers'), `everyMs` apart, until `stop()`. Only an answer of
 * 200 counts as published (`acked`); a request to a dead node lands in `failed` with
 * the node's name. `last()` is the number of the latest attempt.
 */
export function startTickPublisher(nodes, { room = "ticks", everyMs = 5 } = {}) {
  const acked = [];
  const failed = [];
  let publishing = true;
  let n = 0;
  const loop = (async () => {
    while (publishing) {
      n += 1;
      const node = nodes[n % nodes.length];
      try {
        const res = await node.api("POST", "/api/v1/emit", {
          rooms: [room],
          event: "tick",
          args: [{ n }],
        });
        if (res.status === 200) acked.push(n);
        else failed.push({ n, node: node.name, status: res.status, body: res.body });
      } catch (err) {
        failed.push({ n, node: node.name, error: err.cause?.code ?? err.message });
      }
      await sleep(everyMs);
    }
  })();
  return {
    acked,
    failed,
    last: () => n,
    async stop() {
      publishing = false;
      await loop;
    },
  };
}
