// A real redis-server for one test file: its own port and temporary directory, an
// append-only file so a restart keeps the streams (and sessions), and stop / kill /
// restart on the same port for the chaos tests.
//
// The program is `REDIS_SERVER_BIN` if set, else `redis-server` from PATH
// (`scripts/test` installs Debian's redis-server package).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { reapOnExit, removeOnExit } from "../lib/reaper.mjs";
import { freePort, waitFor } from "../lib/wait.mjs";

/** Safety net: an empty or small AOF loads in milliseconds. */
const START_TIMEOUT_MS = 10_000;
/** A clean shutdown (SIGTERM) writes the AOF and exits; kill it after this long. */
const STOP_TIMEOUT_MS = 10_000;
/** Restart on the same port: retry while the old listener is still going away. */
const REBIND_MS = 5_000;
/** Keep this much of the server's output to explain a failure. */
const OUTPUT_KEEP = 16 * 1024;
/** How long `ask` waits to connect, and then for the answer. */
const COMMAND_TIMEOUT_MS = 2_000;

/**
 * Starts redis-server on a free port (or `port`) and resolves once it answers PING.
 * `appendfsync` (`always`, `everysec`, `no`) overrides redis-server's default
 * (`everysec`); `args` are more command-line options (e.g. `--replicaof HOST PORT`).
 */
export async function startRedis({ port, appendfsync, args = [] } = {}) {
  const redis = new RedisServer(
    removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-redis-"))),
    { appendfsync, args },
  );
  const fixedPort = port !== undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      await redis.start(port ?? (await freePort()));
      return redis;
    } catch (err) {
      if (fixedPort || attempt >= 3 || !err.exitedEarly) throw err;
    }
  }
}

export class RedisServer {
  constructor(dir, { appendfsync, args = [] } = {}) {
    this.dir = dir;
    this.appendfsync = appendfsync;
    this.args = args;
    this.port = undefined;
    this.child = null;
    this.output = "";
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server on `port` with the data in `this.dir`; resolves once PING answers. */
  async start(port = this.port) {
    if (this.child) throw new Error("redis-server is already running");
    this.port = port;
    const bin = process.env.REDIS_SERVER_BIN || "redis-server";
    const child = spawn(
      bin,
      [
        "--port", String(port),
        "--bind", "127.0.0.1",
        "--dir", this.dir,
        "--save", "",
        "--appendonly", "yes",
        ...(this.appendfsync ? ["--appendfsync", this.appendfsync] : []),
        "--protected-mode", "no",
        "--daemonize", "no",
        "--loglevel", "warning",
        ...this.args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    reapOnExit(child);
    this.child = child;
    const keep = (chunk) => {
      if (process.env.INTEROP_VERBOSE) process.stderr.write(`[redis] ${chunk}`);
      this.output = (this.output + chunk).slice(-OUTPUT_KEEP);
    };
    child.stdout.setEncoding("utf8").on("data", keep);
    child.stderr.setEncoding("utf8").on("data", keep);
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    let exitedEarly = false;
    const gone = new Promise((_, reject) => {
      child.once("exit", (code, signal) => {
        exitedEarly = true;
        if (this.child === child) this.child = null;
        reject(new Error(`redis-server exited (code ${code}, signal ${signal}) before answering PING`));
      });
      child.once("error", (err) => reject(new Error(`cannot start ${bin}: ${err.message}`)));
    });
    gone.catch(() => {}); // only raced below; a later exit is not an error here
    try {
      await Promise.race([
        gone,
        waitFor(async () => (await ping(port)) === "+PONG", {
          timeout: START_TIMEOUT_MS,
          what: `redis-server PONG on port ${port}`,
        }),
      ]);
    } catch (err) {
      child.kill("SIGKILL");
      await this.exited;
      this.child = null;
      const fail = new Error(`${err.message}\noutput: ${this.output}`);
      fail.exitedEarly = exitedEarly;
      throw fail;
    }
  }

  /** Clean shutdown (SIGTERM: redis writes its AOF and exits). */
  async stop() {
    return this.#signal("SIGTERM");
  }

  /** Simulates a crash. */
  async kill() {
    return this.#signal("SIGKILL");
  }

  /**
   * Stops cleanly (or, with `kill`, crashes it with SIGKILL) and starts again on the
   * same port with the same data (what the append-only file holds).
   */
  async restart({ kill = false } = {}) {
    await (kill ? this.kill() : this.stop());
    const deadline = Date.now() + REBIND_MS;
    for (;;) {
      try {
        return await this.start(this.port);
      } catch (err) {
        if (!err.exitedEarly || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Sends one command to this server; rejects if it does not answer in time. */
  command(...args) {
    return ask(this.port, ...args);
  }

  /** Stops the server if it runs and removes its directory. */
  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async #signal(signal) {
    const child = this.child;
    if (!child) return;
    const exited = this.exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }
}

/**
 * One PING over a plain TCP connection: the first reply line (`+PONG`, `-LOADING ...`)
 * or `null` when nothing answers.
 */
function ping(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    let data = "";
    const done = (value) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(1_000, () => done(null));
    socket.once("error", () => done(null));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.setEncoding("utf8").on("data", (chunk) => {
      data += chunk;
      const nl = data.indexOf("\r\n");
      if (nl !== -1) done(data.slice(0, nl));
    });
  });
}

/** One command on a connection of its own, so a dead server only fails this command. */
export async function ask(port, ...args) {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: COMMAND_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return await client.call(...args);
  } finally {
    client.disconnect();
  }
}
