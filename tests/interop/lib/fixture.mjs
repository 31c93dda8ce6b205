// Starts and stops the server under test (`protocol_fixture cluster`) for the Node and
// browser interop tests; no Socket.IO knowledge lives here.
//
// Which program runs:
// - `INTEROP_SERVER_CMD` (whitespace-separated command, e.g. `node /tmp/standin.mjs`) if
//   set, so the tests can be checked against another implementation of the contract;
// - else `PROTOCOL_FIXTURE_BIN`;
// - else `<repo>/target/debug/examples/protocol_fixture`.
// The arguments `cluster --port PORT --host 127.0.0.1` are appended, and the server must
// print `listening on ADDR` as its first stdout line (see the fixture README).

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const DEFAULT_BIN = resolve(REPO_ROOT, "target/debug/examples/protocol_fixture");
const HOST = "127.0.0.1";

/** Safety net only: a debug build starts in well under a second. */
const START_TIMEOUT_MS = 30_000;
/** How long a stopped server may take to exit before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** Keep this much of the server's stderr to explain a failure. */
const STDERR_KEEP = 16 * 1024;

function serverCommand() {
  const custom = process.env.INTEROP_SERVER_CMD?.trim();
  if (custom) {
    const [cmd, ...args] = custom.split(/\s+/);
    return { cmd, args };
  }
  const bin = process.env.PROTOCOL_FIXTURE_BIN || DEFAULT_BIN;
  if (!existsSync(bin)) {
    throw new Error(
      `fixture binary not found at ${bin}: run \`cargo build -p switchboard-cluster --examples\` ` +
        "or set PROTOCOL_FIXTURE_BIN / INTEROP_SERVER_CMD",
    );
  }
  return { cmd: bin, args: [] };
}

/**
 * A running server. `url` is `http://127.0.0.1:PORT`; `port` can be passed to a later
 * `startFixture({ port })` to restart on the same address.
 */
export class Fixture {
  constructor(child, addr) {
    this.child = child;
    this.addr = addr;
    this.port = Number(addr.slice(addr.lastIndexOf(":") + 1));
    this.url = `http://${HOST}:${this.port}`;
    this.stderr = "";
    this.stopRequested = false;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
  }

  /**
   * Sends `signal` and waits for the exit; kills it if it does not exit in time.
   * Throws, with the server's stderr, if the server had already exited on its own (a
   * crash the tests may only have seen as disconnects), or if it did not exit with
   * code 0 on SIGTERM as the fixture contract requires. Stopping twice is fine.
   */
  async stop(signal = "SIGTERM") {
    const alreadyExited = this.child.exitCode !== null || this.child.signalCode !== null;
    if (this.stopRequested) return this.exited;
    this.stopRequested = true;
    if (alreadyExited) {
      const { code, signal: sig } = await this.exited;
      throw new Error(
        `server exited on its own (code ${code}, signal ${sig}) before the test stopped it\n` +
          `stderr: ${this.stderr}`,
      );
    }
    this.child.kill(signal);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.child.kill("SIGKILL");
    }, STOP_TIMEOUT_MS);
    const result = await this.exited;
    clearTimeout(timer);
    if (signal === "SIGTERM" && (timedOut || result.code !== 0)) {
      throw new Error(
        (timedOut
          ? `server did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`
          : `server exited with code ${result.code}, signal ${result.signal} on SIGTERM (want 0)`) +
          `\nstderr: ${this.stderr}`,
      );
    }
    return result;
  }

  /** Simulates a crash. */
  kill() {
    return this.stop("SIGKILL");
  }
}

/**
 * Spawns the server and resolves once it printed `listening on ADDR`.
 * With `port`, retries for a while if the port is still held by a previous run.
 */
export async function startFixture({ port = 0, retryBindMs = 5_000 } = {}) {
  const deadline = Date.now() + retryBindMs;
  for (;;) {
    try {
      return await spawnOnce(port);
    } catch (err) {
      if (port === 0 || Date.now() > deadline || !err.exitedEarly) throw err;
      await sleep(100);
    }
  }
}

function spawnOnce(port) {
  const { cmd, args } = serverCommand();
  return spawnServer(cmd, [...args, "cluster", "--port", String(port), "--host", HOST]);
}

/**
 * Spawns any program that prints `listening on ADDR` (ADDR `HOST:PORT`, or a URL
 * ending in `:PORT`) as its first stdout line, e.g. the `switchboard` binary or an
 * example backend, and resolves with a `Fixture` once it did. `onStdout` receives every
 * later stdout chunk (e.g. a backend's log). Stop it with `stop()` as any fixture.
 */
export function startProcess(cmd, args, { cwd, env = {}, onStdout } = {}) {
  return spawnServer(cmd, args, { cwd, env, onStdout });
}

function spawnServer(cmd, fullArgs, { cwd, env = {}, onStdout } = {}) {
  const child = spawn(cmd, fullArgs, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { RUST_LOG: process.env.RUST_LOG ?? "warn", ...process.env, ...env },
  });
  let stderr = "";
  let stdout = "";
  let fixture = null;
  // A cluster member's lines carry its `--name`, so interleaved logs can be told apart.
  const nameAt = fullArgs.indexOf("--name");
  const tag = nameAt >= 0 && fullArgs[nameAt + 1] ? `[${fullArgs[nameAt + 1]}] ` : "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    if (process.env.INTEROP_VERBOSE) {
      process.stderr.write(tag ? chunk.replace(/^(?=.)/gm, tag) : chunk);
    }
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
    if (fixture) fixture.stderr = stderr;
  });

  return new Promise((resolve, reject) => {
    const fail = (message, exitedEarly = false) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      const err = new Error(
        `${message}\ncommand: ${cmd} ${fullArgs.join(" ")}\nstdout: ${stdout}\nstderr: ${stderr}`,
      );
      err.exitedEarly = exitedEarly;
      reject(err);
    };
    const timer = setTimeout(
      () => fail(`server did not print "listening on" within ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    child.once("error", (err) => fail(`cannot start server: ${err.message}`));
    child.once("exit", (code, signal) => {
      if (!fixture) fail(`server exited (code ${code}, signal ${signal}) before listening`, true);
    });
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      if (fixture) {
        onStdout?.(chunk); // anything after the first line: drained, or given to the caller
        return;
      }
      stdout += chunk;
      const nl = stdout.indexOf("\n");
      if (nl === -1) return;
      const line = stdout.slice(0, nl).trim();
      const match = /^listening on (?:https?:\/\/)?(\S+?)\/?$/.exec(line);
      if (!match) return fail(`unexpected first stdout line: ${JSON.stringify(line)}`);
      clearTimeout(timer);
      fixture = new Fixture(child, match[1]);
      fixture.stderr = stderr;
      resolve(fixture);
      const rest = stdout.slice(nl + 1);
      if (rest) onStdout?.(rest);
    });
  });
}
