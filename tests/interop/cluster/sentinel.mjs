// A Redis Sentinel setup for the Sentinel test: a master, replicas of it, and three
// Sentinels watching it as `mymaster` (quorum 2, a master silent for 1 s is down), all
// real redis-server processes on their own ports.

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import { reapOnExit, removeOnExit } from "../lib/reaper.mjs";
import { freePort, waitFor } from "../lib/wait.mjs";
import { startRedis } from "./redis.mjs";

export const MASTER_NAME = "mymaster";

/** One Sentinel process watching the master on `masterPort` (`password`: requirepass). */
async function startSentinel(masterPort, password) {
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-sentinel-")));
  const port = await freePort();
  const file = join(dir, "sentinel.conf");
  writeFileSync(
    file,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      "protected-mode no",
      "daemonize no",
      `dir ${dir}`,
      "loglevel warning",
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
      `sentinel failover-timeout ${MASTER_NAME} 5000`,
      `sentinel parallel-syncs ${MASTER_NAME} 2`,
      ...(password ? [`requirepass ${password}`] : []),
      "",
    ].join("\n"),
  );
  const bin = process.env.REDIS_SERVER_BIN || "redis-server";
  const child = spawn(bin, [file, "--sentinel"], { stdio: ["ignore", "pipe", "pipe"] });
  reapOnExit(child);
  let output = "";
  const keep = (chunk) => {
    if (process.env.INTEROP_VERBOSE) process.stderr.write(`[sentinel ${port}] ${chunk}`);
    output = (output + chunk).slice(-16 * 1024);
  };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const client = new Redis({ port, host: "127.0.0.1", password, lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on("error", () => {});
  await waitFor(
    async () => {
      try {
        return (await client.ping()) === "PONG";
      } catch {
        return false;
      }
    },
    { what: `sentinel on port ${port}`, timeout: 10_000 },
  ).catch((err) => {
    throw new Error(`${err.message}\n${output}`);
  });
  return {
    port,
    client,
    async stop() {
      client.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a master, `replicas` replicas of it, and three Sentinels; resolves once every
 * Sentinel sees every replica. `url` is the `redis+sentinel://` URL of the setup.
 * `sentinelPassword`: the Sentinels require it (the URL carries it).
 */
export async function startSentinelSetup({ replicas = 2, sentinelPassword } = {}) {
  const master = await startRedis();
  const copies = [];
  for (let i = 0; i < replicas; i++) {
    copies.push(await startRedis({ args: ["--replicaof", "127.0.0.1", String(master.port)] }));
  }
  const sentinels = [];
  for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(master.port, sentinelPassword));
  const setup = new SentinelSetup(master, copies, sentinels, sentinelPassword);
  await waitFor(
    async () => {
      for (const s of sentinels) {
        const known = await s.client.call("SENTINEL", "replicas", MASTER_NAME).catch(() => []);
        if (known.length < replicas) return false;
      }
      return true;
    },
    { what: "every Sentinel to see every replica", timeout: 20_000 },
  );
  return setup;
}

export class SentinelSetup {
  constructor(master, replicas, sentinels, sentinelPassword) {
    this.servers = [master, ...replicas];
    this.master = master;
    this.sentinels = sentinels;
    this.sentinelPassword = sentinelPassword;
  }

  get url() {
    const hosts = this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(",");
    const auth = this.sentinelPassword ? `?sentinel_password=${encodeURIComponent(this.sentinelPassword)}` : "";
    return `redis+sentinel://${hosts}/${MASTER_NAME}${auth}`;
  }

  /** The master's port as the first Sentinel names it. */
  async masterPort() {
    const [, port] = await this.sentinels[0].client.call("SENTINEL", "get-master-addr-by-name", MASTER_NAME);
    return Number(port);
  }

  async close() {
    for (const s of this.sentinels) await s.stop();
    for (const r of this.servers) await r.close();
  }
}

/**
 * Where a stopped Sentinel listened (`port`), a stand-in that accepts each connection
 * and closes it at once, so a node's lookup there fails as at a dead Sentinel, and
 * counts them: `connections`, `close()`.
 */
export async function deadSentinel(port) {
  const standIn = { connections: 0 };
  const server = createServer((socket) => {
    standIn.connections++;
    socket.destroy();
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  standIn.close = () => new Promise((resolve) => server.close(() => resolve()));
  return standIn;
}
