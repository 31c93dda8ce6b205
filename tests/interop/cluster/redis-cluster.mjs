// A real Redis Cluster for one test file: `masters` masters with `replicasPerMaster`
// replicas each, every one a redis-server process on its own ports and temporary
// directory on 127.0.0.1, joined with `redis-cli --cluster create`, and the failover of
// a master for the chaos tests (SIGKILL it; its replica takes over its slots).
//
// The programs are `REDIS_SERVER_BIN` / `REDIS_CLI_BIN` if set, else `redis-server` /
// `redis-cli` from PATH (`scripts/test` installs Debian's redis-server package, 7.0).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reapOnExit, removeOnExit } from "../lib/reaper.mjs";
import { freePort, waitFor } from "../lib/wait.mjs";
import { RedisServer, ask } from "./redis.mjs";

const HOST = "127.0.0.1";
export const SLOTS = 16384;
/** A node that cannot reach another for this long flags it as failing. */
const NODE_TIMEOUT_MS = 1_000;
/** `redis-cli --cluster create` assigns the slots and waits for the nodes to agree. */
const CREATE_TIMEOUT_MS = 30_000;
/** Safety net: the nodes agree on a new cluster within a few seconds. */
const READY_TIMEOUT_MS = 30_000;
/** After a master's death: its replica is elected within a few node timeouts. */
const FAILOVER_TIMEOUT_MS = 20_000;
/** One administrative command to one node. */
const COMMAND_TIMEOUT_MS = 2_000;

/**
 * Starts `masters * (1 + replicasPerMaster)` redis-server processes in cluster mode,
 * makes them one cluster (`redis-cli --cluster create ... --cluster-replicas N`), and
 * resolves once every node says `cluster_state:ok`, with all 16384 slots served and
 * every replica attached to its master.
 */
export async function startRedisCluster({ masters = 3, replicasPerMaster = 1 } = {}) {
  if (masters < 3) throw new Error("a Redis Cluster needs at least 3 masters");
  const count = masters * (1 + replicasPerMaster);
  const started = await Promise.allSettled(Array.from({ length: count }, () => startNode()));
  const nodes = started.filter((r) => r.status === "fulfilled").map((r) => r.value);
  const cluster = new RedisCluster(nodes);
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await cluster.close();
    throw failed.reason;
  }
  try {
    await cluster.create(replicasPerMaster);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** One cluster-enabled redis-server on free ports (client port and cluster bus port). */
async function startNode() {
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-redis-cluster-")));
  for (let attempt = 0; ; attempt++) {
    // The bus port is given explicitly: the default (port + 10000) may not exist for a
    // port from the ephemeral range.
    const busPort = await freePort();
    const server = new RedisServer(dir, {
      args: [
        "--appendonly", "no",
        "--cluster-enabled", "yes",
        "--cluster-config-file", join(dir, "nodes.conf"),
        "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
        "--cluster-port", String(busPort),
        // A replica takes over however long ago it last heard from its master.
        "--cluster-replica-validity-factor", "0",
        "--cluster-allow-reads-when-down", "no",
        // A replica's first sync starts at once, not after the default 5 s wait.
        "--repl-diskless-sync-delay", "0",
        // The master pings its replica every second (default 10 s), so the replica's
        // offset moves and CLUSTER SHARDS soon calls it online rather than loading.
        "--repl-ping-replica-period", "1",
      ],
    });
    try {
      await server.start(await freePort());
      return new RedisClusterNode(server, busPort);
    } catch (err) {
      rmSync(join(dir, "nodes.conf"), { force: true });
      if (attempt >= 3 || !err.exitedEarly) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

/** One member of the cluster: `port`, `process` (the ChildProcess while it runs), `id`. */
export class RedisClusterNode {
  constructor(server, busPort) {
    this.server = server;
    this.busPort = busPort;
    this.id = undefined;
  }

  get port() {
    return this.server.port;
  }

  get process() {
    return this.server.child;
  }

  get running() {
    return Boolean(this.server.child);
  }

  get address() {
    return `${HOST}:${this.port}`;
  }

  /** Sends one command to this node alone; rejects if it does not answer in time. */
  command(...args) {
    return ask(this.port, ...args);
  }

  /** A crash: SIGKILL. */
  kill() {
    return this.server.kill();
  }

  async close() {
    await this.server.kill();
    rmSync(this.server.dir, { recursive: true, force: true });
  }
}

export class RedisCluster {
  constructor(nodes) {
    this.nodes = nodes;
    /** The masters as created (the URL's seeds); a failover does not change them. */
    this.masters = [];
  }

  /** The `redis+cluster://` URL Switchboard takes: the first masters as seeds. */
  get url() {
    return `redis+cluster://${this.masters.map((n) => n.address).join(",")}`;
  }

  /** Seeds for ioredis: `new Cluster(cluster.seeds, ...)`. */
  get seeds() {
    return this.masters.map((n) => ({ host: HOST, port: n.port }));
  }

  get running() {
    return this.nodes.filter((n) => n.running);
  }

  /** `redis-cli --cluster create`, then waits until every node agrees the cluster is ok. */
  async create(replicas) {
    const bin = process.env.REDIS_CLI_BIN || "redis-cli";
    const args = [
      "--cluster", "create",
      ...this.nodes.map((n) => n.address),
      "--cluster-replicas", String(replicas),
      "--cluster-yes",
    ];
    const { code, output } = await run(bin, args, CREATE_TIMEOUT_MS);
    if (code !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${code}):\n${output}`);
    for (const n of this.nodes) n.id = String(await n.command("CLUSTER", "MYID"));
    await this.#waitHealthy(this.nodes, "the new Redis Cluster", READY_TIMEOUT_MS, 1 + replicas);
    const shards = await this.shards();
    this.masters = shards
      .map((s) => this.#byId(s.nodes.find((n) => n.role === "master").id))
      .sort((a, b) => a.port - b.port);
  }

  /**
   * `CLUSTER SHARDS` as one running node sees it: `[{ slots: [[from, to], ...], nodes:
   * [{ id, port, role, health, ... }] }]`.
   */
  async shards(from = this.running) {
    let last;
    for (const node of from) {
      try {
        const reply = await node.command("CLUSTER", "SHARDS");
        return reply.map((raw) => {
          const shard = pairs(raw);
          const flat = shard.slots.map(Number);
          const slots = [];
          for (let i = 0; i < flat.length; i += 2) slots.push([flat[i], flat[i + 1]]);
          return { slots, nodes: shard.nodes.map((n) => ({ ...pairs(n), port: Number(pairs(n).port) })) };
        });
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no running node answered CLUSTER SHARDS: ${last?.message}`);
  }

  /** The hash slot of `key` (`CLUSTER KEYSLOT`). */
  async slotOf(key) {
    let last;
    for (const node of this.running) {
      try {
        return Number(await node.command("CLUSTER", "KEYSLOT", key));
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no running node answered CLUSTER KEYSLOT: ${last?.message}`);
  }

  /** The node that serves the slot of `key` now (as the running nodes see it). */
  async masterOf(key) {
    const slot = await this.slotOf(key);
    const master = this.#masterOfSlot(slot, await this.shards());
    if (!master) throw new Error(`no online master serves slot ${slot} (of ${JSON.stringify(key)})`);
    return master;
  }

  /**
   * SIGKILLs the master that serves the slot of `key`, and resolves once a replica
   * serves its slots in the view of every surviving node and they all say
   * `cluster_state:ok` again: `{ killed, master, slot, ms }` (`ms`: from the kill until
   * then).
   */
  async killMasterOf(key) {
    const slot = await this.slotOf(key);
    const killed = await this.masterOf(key);
    const start = Date.now();
    await killed.kill();
    const survivors = this.running;
    let master;
    await settle(
      async () => {
        master = undefined;
        for (const node of survivors) {
          const serving = this.#masterOfSlot(slot, await this.shards([node]));
          if (!serving || serving === killed) return `${node.address} sees no new master for slot ${slot}`;
          if (master && serving !== master) return `the survivors disagree on the master of slot ${slot}`;
          master = serving;
        }
        return this.#unhealthy(survivors, { failed: killed });
      },
      {
        timeout: FAILOVER_TIMEOUT_MS,
        what: `a replica to take over slot ${slot} from ${killed.address} (SIGKILLed)`,
      },
    );
    return { killed, master, slot, ms: Date.now() - start };
  }

  /**
   * Moves the slot of `key`, with its keys, to another master while clients use it
   * (resharding, as `redis-cli --cluster reshard` does): the target `IMPORTING`, the
   * source `MIGRATING` (clients get `ASK` for keys already moved), `MIGRATE` batch by
   * batch, then every master is told the slot's new owner (clients get `MOVED`).
   * Resolves once every running node sees the new owner: `{ slot, from, to }`.
   */
  async migrateSlotOf(key) {
    const slot = await this.slotOf(key);
    const from = await this.masterOf(key);
    const masters = (await this.shards())
      .map((s) => s.nodes.find((n) => n.role === "master" && n.health === "online"))
      .filter(Boolean)
      .map((n) => this.#byId(n.id));
    const to = masters.find((m) => m !== from);
    if (!to) throw new Error("no other master to move the slot to");
    await to.command("CLUSTER", "SETSLOT", slot, "IMPORTING", from.id);
    await from.command("CLUSTER", "SETSLOT", slot, "MIGRATING", to.id);
    for (;;) {
      const keys = await from.command("CLUSTER", "GETKEYSINSLOT", slot, 100);
      if (keys.length === 0) break;
      await from.command("MIGRATE", HOST, to.port, "", 0, COMMAND_TIMEOUT_MS, "KEYS", ...keys);
    }
    // The new owner first, then the old one, then the rest (as redis-cli does).
    for (const m of [to, from, ...masters.filter((m) => m !== to && m !== from)]) {
      await m.command("CLUSTER", "SETSLOT", slot, "NODE", to.id);
    }
    await settle(
      async () => {
        for (const node of this.running) {
          const owner = this.#masterOfSlot(slot, await this.shards([node]));
          if (owner !== to) return `${node.address} sees ${owner?.address} serving slot ${slot}`;
        }
        return undefined;
      },
      { timeout: FAILOVER_TIMEOUT_MS, what: `every node to see slot ${slot} on ${to.address}` },
    );
    return { slot, from, to };
  }

  /**
   * How many connections have SSUBSCRIBEd `channel`, summed over the running nodes
   * (`PUBSUB SHARDNUMSUB` counts a node's own clients only).
   */
  async shardNumSub(channel) {
    const counts = await Promise.all(
      this.running.map(async (n) => Number((await n.command("PUBSUB", "SHARDNUMSUB", channel))[1])),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Kills every node and removes their directories. */
  async close() {
    await Promise.allSettled(this.nodes.map((n) => n.close()));
  }

  #byId(id) {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`unknown Redis Cluster node id ${id}`);
    return node;
  }

  #masterOfSlot(slot, shards) {
    const shard = shards.find((s) => s.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
    const master = shard?.nodes.find((n) => n.role === "master" && n.health === "online");
    return master ? this.#byId(master.id) : undefined;
  }

  async #waitHealthy(nodes, what, timeout, shardSize) {
    await settle(() => this.#unhealthy(nodes, { shardSize }), { timeout, what });
  }

  /**
   * Why `nodes` do not form a healthy cluster yet (`undefined` when they do): each must
   * say `cluster_state:ok` with every slot served, know every node but `failed`, and
   * (outside a failover) see every node online, in shards of `shardSize` nodes (every
   * replica attached to its master).
   */
  async #unhealthy(nodes, { failed, shardSize } = {}) {
    for (const node of nodes) {
      const info = parseInfo(String(await node.command("CLUSTER", "INFO")));
      if (info.cluster_state !== "ok") return `${node.address}: cluster_state:${info.cluster_state}`;
      if (Number(info.cluster_slots_ok) !== SLOTS) {
        return `${node.address}: cluster_slots_ok:${info.cluster_slots_ok} of ${SLOTS}`;
      }
      if (Number(info.cluster_known_nodes) !== this.nodes.length) {
        return `${node.address}: knows ${info.cluster_known_nodes} of ${this.nodes.length} nodes`;
      }
    }
    if (failed) return undefined;
    for (const node of nodes) {
      const shards = await this.shards([node]);
      const members = shards.flatMap((s) => s.nodes).filter((n) => n.health === "online");
      if (members.length !== this.nodes.length) {
        return `${node.address}: ${members.length} of ${this.nodes.length} nodes online in CLUSTER SHARDS`;
      }
      const sizes = shards.map((s) => s.nodes.length);
      if (shardSize && sizes.some((n) => n !== shardSize)) {
        return `${node.address}: shards of ${sizes.join(", ")} nodes, not ${shardSize} each`;
      }
    }
    return undefined;
  }
}

/**
 * Polls `problem` (async: a text saying what is still wrong, or `undefined`) every
 * 100 ms until it finds nothing wrong; rejects after `timeout` ms with the last problem.
 */
async function settle(problem, { timeout, what }) {
  let last;
  try {
    await waitFor(
      async () => {
        last = await problem();
        return last === undefined;
      },
      { timeout, interval: 100, what },
    );
  } catch (err) {
    throw new Error(`${err.message}; still: ${last}`);
  }
}

/** `[k1, v1, k2, v2, ...]` (a RESP2 map) as an object. */
function pairs(flat) {
  const out = {};
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

/** `CLUSTER INFO`'s `key:value` lines as an object. */
function parseInfo(text) {
  const out = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(":");
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

/** Runs a program to its end (killed after `timeout` ms): `{ code, output }`. */
function run(bin, args, timeout) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    reapOnExit(child);
    let output = "";
    const keep = (chunk) => {
      if (process.env.INTEROP_VERBOSE) process.stderr.write(`[redis-cli] ${chunk}`);
      output = (output + chunk).slice(-16 * 1024);
    };
    child.stdout.setEncoding("utf8").on("data", keep);
    child.stderr.setEncoding("utf8").on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${err.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, output });
    });
  });
}
