// What the cluster test files share: one Redis and one cluster per file (started in
// `before`, stopped in `after`), clients that are closed after each test, and small
// helpers for event payloads that may carry a recovery offset.

import { readFileSync, readdirSync } from "node:fs";
import { after, afterEach, before } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { decode } from "@msgpack/msgpack";
import { Clients, TRANSPORT_MODES, call, connected } from "../lib/client.mjs";
import { startCluster } from "./cluster.mjs";
import { startHaproxy } from "./haproxy.mjs";
import { startRedis } from "./redis.mjs";
import { startRedisCluster } from "./redis-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";

export const WEBSOCKET = TRANSPORT_MODES.find((m) => m.name === "websocket only");
export const POLLING = TRANSPORT_MODES.find((m) => m.name === "polling only");
export const UPGRADE = TRANSPORT_MODES.find((m) => m.name === "polling then websocket upgrade");

/** Fast retries, so tests do not sit in back-off; the client's own logic still decides. */
export const RECONNECT = {
  reconnection: true,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  randomizationFactor: 0.5,
};

/**
 * Starts redis-server and a cluster for the whole test file (or the `describe` it is
 * called in) and stops them afterwards; returns the context the tests read (`redis`,
 * `cluster`, `clients`, and `lb` with `haproxy: true`: HAProxy round-robin over the
 * Switchboard nodes only).
 *
 * With `redisCluster: true` the nodes run on a Redis Cluster (`startRedisCluster()`,
 * their `--redis-url` is its `redis+cluster://` URL) instead of one redis-server; it is
 * `ctx.redisCluster`, and `ctx.redis` too (`url`, `close()`). `extraArgs` go to the
 * Switchboard nodes, `nodeArgs` to the Node.js ones (see `startCluster`).
 */
export function useCluster({
  adapter,
  switchboard = 3,
  node = 0,
  haproxy = false,
  redisCluster = false,
  extraArgs = [],
  nodeArgs = [],
}) {
  const ctx = { redis: null, redisCluster: null, cluster: null, lb: null, clients: new Clients() };
  before(async () => {
    if (redisCluster) ctx.redis = ctx.redisCluster = await startRedisCluster();
    else ctx.redis = await startRedis();
    ctx.cluster = await startCluster({
      adapter,
      redisUrl: ctx.redis.url,
      switchboard,
      node,
      extraArgs,
      nodeArgs,
    });
    if (haproxy) ctx.lb = await startHaproxy(ctx.cluster.switchboard.map((n) => n.port));
  });
  afterEach(() => ctx.clients.closeAll());
  after(async () => {
    ctx.clients.closeAll();
    try {
      await ctx.lb?.stop();
      await ctx.cluster?.stop();
    } finally {
      await ctx.redis?.close();
    }
  });
  return ctx;
}

/**
 * Waits until Redis holds `socket`'s recovery session (`sio:session:<pid>`, base64 of
 * msgpack, as Node's streams adapter writes it) with every room of `rooms`. A node
 * writes the session when its socket connects, joins or leaves, through its stream
 * writer, milliseconds later (on a loaded machine, after a cross-node broadcast to the
 * same client has arrived: 3 of 150 joins in a measured run); a node killed or frozen
 * before then loses that change. A test of what survives such a blow waits for it.
 * Returns the session as Redis holds it.
 */
export async function untilSessionSaved(ctx, socket, rooms) {
  const key = `sio:session:${socket._pid}`;
  let saved;
  try {
    await waitFor(
      async () => {
        const raw = await ctx.redis.command("GET", key);
        saved = raw && decode(Buffer.from(raw, "base64"));
        return Boolean(saved) && rooms.every((room) => saved.rooms.includes(room));
      },
      { what: `Redis to hold ${key} with the rooms ${JSON.stringify(rooms)}` },
    );
  } catch (err) {
    err.message += `; the session Redis last held: ${JSON.stringify(saved ?? null)}`;
    throw err;
  }
  return saved;
}

/**
 * The state of each thread of process `pid` as /proc tells it, one letter each (`T`
 * stopped, `S` sleeping, `R` running, …).
 */
export function threadStates(pid) {
  return readdirSync(`/proc/${pid}/task`)
    .map((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      // The state follows the command name, which is in parentheses.
      return stat[stat.lastIndexOf(")") + 2];
    })
    .join("");
}

/** Whether every thread of process `pid` is stopped (as `freeze` in lib/wait.mjs leaves it). */
export function frozen(pid) {
  return [...threadStates(pid)].every((state) => "Tt".includes(state));
}

/** Connects a client (websocket only unless `mode` says otherwise) and returns its socket. */
export async function connectTo(ctx, url, opts = {}, mode = WEBSOCKET) {
  const { socket } = await ctx.clients.connect(url.url ?? url, mode, opts);
  return socket;
}

/** One websocket client on each running node: `[{ node, socket }]`. */
export async function oneClientPerNode(ctx, nodes = ctx.cluster.nodes) {
  const out = [];
  for (const node of nodes) out.push({ node, socket: await connectTo(ctx, node) });
  return out;
}

/** The first argument of the acknowledgement of `event`. */
export async function first(socket, event, ...args) {
  return (await call(socket, event, ...args))[0];
}

/**
 * An event's arguments without the recovery offset. With connection state recovery on,
 * a broadcast event carries its offset (a string) as a last argument (Node appends it
 * with the streams adapter; the client reads it as `_lastOffset`). Test payloads never
 * end with a string, so a trailing string is always an offset. Node's sharded adapter
 * has no offsets, yet with recovery on Node still appends one: `""` to its own
 * broadcasts, `null` to those from other nodes; test payloads never end with `null`
 * either, so a trailing `null` is dropped too.
 */
export function withoutOffset(args) {
  const last = args.at(-1);
  return args.length && (typeof last === "string" || last === null) ? args.slice(0, -1) : args;
}

/** Records every `event` on `socket` from now on, offsets removed. */
export function recordData(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(withoutOffset(args)));
  return seen;
}

let roomSeq = 0;
/** A room name no other test uses. */
export const fresh = (tag) => `${tag}-${process.pid}-${++roomSeq}`;

export const sorted = (xs) => [...xs].sort();
export const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Both directions of every cross-node behaviour: asked on a Switchboard node, and on
 * the Node.js one.
 */
export const SIDES = [
  { label: "asked on a Switchboard node", pick: (cluster) => cluster.switchboard[0] },
  { label: "asked on the Node.js node", pick: (cluster) => cluster.node[0] },
];

/**
 * One client of a chaos test (cluster-chaos and serve-chaos) in `room`, reconnecting with
 * RECONNECT. `segments` holds the numbers received, split at each reconnect that was not
 * recovered (after which it joins the room again); `reconnects` files each reconnect
 * under the blow under way (`phase()`), with whether it was recovered and the last
 * number received before it.
 *
 * - `number(args)`: the event number in a `seq` event's arguments (offset removed);
 * - `joined(answer)`: whether the `join` event's acknowledgement says it joined;
 * - `askMs`: how long a join may wait for its acknowledgement.
 */
export class ChaosMember {
  constructor({ clients, index, mode, url, room, phase, number, joined, askMs }) {
    this.index = index;
    this.mode = mode;
    this.room = room;
    this.joined = joined;
    this.askMs = askMs;
    this.segments = [[]];
    this.connects = 0;
    this.recovered = 0;
    this.unrecovered = 0;
    this.rejoinFailures = 0;
    /** Each disconnect: `{ reason, phase }`. */
    this.disconnects = [];
    /**
     * Each reconnect: `{ phase, recovered, after, id }` (the last number received before
     * it; the socket id, to find it in the servers' logs).
     */
    this.reconnects = [];
    this.socket = clients.open(url, mode, RECONNECT);
    this.socket.on("seq", (...args) => this.segments.at(-1).push(number(withoutOffset(args))));
    this.socket.on("disconnect", (reason) => this.disconnects.push({ reason, phase: phase() }));
    this.socket.on("connect", () => {
      if (++this.connects === 1) return;
      const recovered = this.socket.recovered;
      this.reconnects.push({ phase: phase(), recovered, after: this.last, id: this.socket.id });
      if (recovered) {
        this.recovered++;
        return;
      }
      this.unrecovered++;
      this.segments.push([]);
      this.socket.timeout(this.askMs).emit("join", this.room, (err, answer) => {
        if (err || !this.joined(answer)) this.rejoinFailures++;
      });
    });
  }

  async start() {
    this.socket.connect();
    await connected(this.socket);
    const answer = await this.socket.timeout(this.askMs).emitWithAck("join", this.room);
    assert.ok(this.joined(answer), `client ${this.index} joined ${this.room}: ${JSON.stringify(answer)}`);
  }

  /** The last number received, -1 before any. */
  get last() {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      if (this.segments[i].length) return this.segments[i].at(-1);
    }
    return -1;
  }

  /** The reconnects filed under `name`. */
  reconnectsIn(name) {
    return this.reconnects.filter((r) => r.phase === name);
  }

  /** The reconnects as text, a run of identical ones (a client in a loop) as one entry. */
  get log() {
    return reconnectLog(this.reconnects);
  }
}

/**
 * The chaos tests' accounting (cluster-chaos and serve-chaos): for one member whose
 * `segments` hold the numbers it received, split at each reconnect that was not
 * recovered, counts the acknowledged numbers (`ackedSorted`) it lacks outside the gaps
 * those reconnects allow, numbers it got twice, and numbers out of order.
 */
export function analyse(member, ackedSorted) {
  const all = member.segments.flat();
  const counts = new Map();
  for (const n of all) counts.set(n, (counts.get(n) ?? 0) + 1);
  const duplicated = [...counts.values()].reduce((sum, c) => sum + c - 1, 0);
  const duplicatedNumbers = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
  let outOfOrder = 0;
  for (let i = 1; i < all.length; i++) if (all[i] < all[i - 1]) outOfOrder++;

  // Allowed gaps: before the first non-empty segment if an unrecovered reconnect came
  // first, between two segments, after the last non-empty segment if an unrecovered
  // reconnect came after it.
  const segs = member.segments.map((s, i) => ({ i, s })).filter(({ s }) => s.length);
  const gaps = [];
  const lastIndex = member.segments.length - 1;
  if (segs.length === 0) {
    if (lastIndex > 0) gaps.push([-Infinity, Infinity]);
  } else {
    if (segs[0].i > 0) gaps.push([-Infinity, Math.min(...segs[0].s)]);
    for (let j = 1; j < segs.length; j++) {
      gaps.push([Math.max(...segs[j - 1].s), Math.min(...segs[j].s)]);
    }
    if (segs.at(-1).i < lastIndex) gaps.push([Math.max(...segs.at(-1).s), Infinity]);
  }
  const inGap = (n) => gaps.some(([lo, hi]) => n > lo && n < hi);
  const lostNumbers = ackedSorted.filter((n) => !counts.has(n) && !inGap(n));
  return { duplicated, duplicatedNumbers, outOfOrder, lost: lostNumbers.length, lostNumbers, received: all.length };
}

/**
 * A chaos member's reconnects (`{phase, recovered, after, id}`) as text, a run of identical
 * ones (a client in a loop) as one entry.
 */
export function reconnectLog(reconnects) {
  const runs = [];
  for (const r of reconnects) {
    const text = `${r.phase}: ${r.recovered ? "recovered" : "NOT recovered"} after ${r.after} as ${r.id}`;
    if (runs.at(-1)?.text === text) runs.at(-1).times++;
    else runs.push({ text, times: 1 });
  }
  return runs.map(({ text, times }) => (times > 1 ? `${text} (x${times})` : text));
}

/**
 * Disconnect reasons (in all, and per blow: `reasonsPerPhase[phase][reason]`) and
 * reconnects per blow (recovered or not) over chaos members.
 */
export function tally(members) {
  const reasons = {};
  const reasonsPerPhase = {};
  for (const m of members) {
    for (const { reason, phase } of m.disconnects) {
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      const p = (reasonsPerPhase[phase] ??= {});
      p[reason] = (p[reason] ?? 0) + 1;
    }
  }
  const perPhase = {};
  for (const m of members) {
    for (const r of m.reconnects) {
      const p = (perPhase[r.phase] ??= { recovered: 0, unrecovered: 0 });
      p[r.recovered ? "recovered" : "unrecovered"]++;
    }
  }
  return { reasons, reasonsPerPhase, perPhase };
}

/**
 * Sends numbered events: `send(0)`, `send(1)`, … (each awaited), one every `everyMs`,
 * until `stop()`, which resolves with how many were sent once the last one is done.
 *
 * `started` is how many sends have begun (numbers 0 .. started - 1), `acked` how many
 * have resolved. One send runs at a time, so `started` is `acked` or `acked + 1`. A
 * client that reads `started` in its `connect` handler was connected before the send of
 * number `started` began: it must receive that number and every later one.
 */
export function numberedPublisher(send, everyMs) {
  let started = 0;
  let acked = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const n = started++;
      await send(n);
      acked = n + 1;
      await sleep(everyMs);
    }
  })();
  return {
    get started() {
      return started;
    },
    get acked() {
      return acked;
    },
    async stop() {
      running = false;
      await loop;
      return acked;
    },
  };
}

/**
 * Waits up to `ms` for the numbers `seen()` returns to end at `last`; they must then be
 * every number from the first one received up to `last`, once, in order: nothing lost,
 * repeated or reordered after a client's first event.
 */
export async function receivesEveryNumberTo(seen, last, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (seen().at(-1) !== last && Date.now() < deadline) await sleep(20);
  assertEveryNumberTo(seen(), last, what);
}

/** `seen` is every number from its first up to `last`, once, in order. */
export function assertEveryNumberTo(seen, last, what) {
  const from = seen[0] ?? 0;
  const want = Array.from({ length: last - from + 1 }, (_, k) => from + k);
  assert.deepEqual(seen, want, `${what}: every event from its first on, once, in order`);
}

/**
 * Waits up to `ms` for the numbers `seen()` returns to end at `last`; they must then be
 * every number from at most `firstAtMost` up to `last`, once, in order (see
 * `assertEveryNumberFromTo`): a client that missed its first events fails, as one that
 * lost, repeated or reordered any later.
 */
export async function receivesEveryNumberFromTo(seen, firstAtMost, last, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (seen().at(-1) !== last && Date.now() < deadline) await sleep(20);
  assertEveryNumberFromTo(seen(), firstAtMost, last, what);
}

/**
 * `seen` is every number from its first up to `last`, once, in order, and its first is
 * at most `firstAtMost`: a client that must receive everything published from some
 * point on (numbers above `firstAtMost - 1`) did, not only what came after it happened to
 * start receiving.
 */
export function assertEveryNumberFromTo(seen, firstAtMost, last, what) {
  assert.ok(
    seen.length > 0 && seen[0] <= firstAtMost,
    `${what}: its first event is ${seen[0]}, want at most ${firstAtMost} (got ${seen.length} events)`,
  );
  assertEveryNumberTo(seen, last, what);
}
