// Starts the real `switchboard serve` binary with a TOML config for the tests that need
// the shipped server rather than the protocol fixture (e.g. node/hostile.test.mjs), and
// reads what those tests watch from outside: its memory (VmRSS) and its metrics.
//
// The binary is `SB_SERVER_BIN` if set, else `switchboard` next to the fixture that
// `PROTOCOL_FIXTURE_BIN` names (scripts/test sets it to this workspace's debug build),
// else `<repo>/target/debug/switchboard` (built by `cargo build --workspace --examples`).

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startProcess } from "./fixture.mjs";
import { reapOnExit, removeOnExit } from "./reaper.mjs";
import { waitFor } from "./wait.mjs";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Safety net: a debug build is ready within a second or two (Redis adapters included). */
const READY_TIMEOUT_MS = 20_000;

/** The `switchboard` binary to run (see the file comment). */
export function switchboardBin() {
  if (process.env.SB_SERVER_BIN) return process.env.SB_SERVER_BIN;
  const fixture = process.env.PROTOCOL_FIXTURE_BIN;
  const bin = fixture
    ? resolve(dirname(fixture), "../switchboard")
    : resolve(REPO_ROOT, "target/debug/switchboard");
  if (!existsSync(bin)) {
    throw new Error(
      `switchboard binary not found at ${bin}: run \`cargo build --workspace --examples\` ` +
        "or set SB_SERVER_BIN",
    );
  }
  return bin;
}

/** A running `switchboard serve`: `url`, `pid`, `rssBytes()`, `peakRssBytes()`, `metrics()`, `stop()`. */
export class Switchboard {
  constructor(fixture, dir) {
    this.fixture = fixture;
    this.dir = dir;
    this.url = fixture.url;
    this.port = fixture.port;
    this.pid = fixture.child.pid;
  }

  /** The server's stderr kept so far, to explain a failure. */
  get stderr() {
    return this.fixture.stderr;
  }

  /** Whether the process is still running. */
  get running() {
    const child = this.fixture.child;
    return child.exitCode === null && child.signalCode === null;
  }

  /** Resident memory (VmRSS of /proc/PID/status) in bytes. */
  rssBytes() {
    return this.#status("VmRSS");
  }

  /** The most resident memory the process has had (VmHWM, its high-water mark), in bytes. */
  peakRssBytes() {
    return this.#status("VmHWM");
  }

  #status(field) {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, "m").exec(status);
    if (!match) throw new Error(`no ${field} in /proc/${this.pid}/status`);
    return Number(match[1]) * 1024;
  }

  /** The text of `/metrics`. */
  async metricsText() {
    const res = await fetch(`${this.url}/metrics`);
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return res.text();
  }

  /**
   * `/metrics` as a map from sample (`name{labels}` exactly as exposed, or `name`) to
   * value.
   */
  async metrics() {
    return parseMetrics(await this.metricsText());
  }

  /** The status of `GET path` (e.g. `/health/live`). */
  async status(path) {
    const res = await fetch(`${this.url}${path}`);
    await res.arrayBuffer();
    return res.status;
  }

  /**
   * `method path` on the HTTP API (`/api/v1/...`) with `Authorization: Bearer key` and
   * `body` as JSON when given; resolves with `{ status, body }` (the parsed JSON answer,
   * or its text when it is not JSON).
   */
  async api(key, method, path, body) {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: res.status, body: parsed };
  }

  /**
   * SIGTERM and waits for a clean exit (status 0 within the fixture's deadline); throws
   * with the server's stderr otherwise, or if it had died on its own. Removes the
   * config directory. Stopping twice is fine.
   */
  async stop() {
    try {
      await this.fixture.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /**
   * SIGKILL (a crash) and waits for the exit; throws, with the server's stderr, if it
   * had died on its own. Removes the config directory.
   */
  async kill() {
    try {
      await this.fixture.kill();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Parses the Prometheus text format into `Map(sample -> number)`. */
export function parseMetrics(text) {
  const samples = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const cut = line.lastIndexOf(" ");
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/**
 * Writes `config` (TOML text, without `listen`) to a temporary directory, starts
 * `switchboard serve` on 127.0.0.1 with a free port (or `port`, e.g. to restart a node
 * where its clients find it), and resolves once `/health/ready` answers 200 (with
 * `ready: false`, once it listens: a clustered node is not ready while Redis is down).
 * `env` adds environment variables (e.g. secrets). A start that fails because `port`
 * is still taken rejects with an error whose `exitedEarly` is true.
 */
export async function startSwitchboard({ config = "", env = {}, port = 0, ready = true } = {}) {
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-serve-")));
  const file = join(dir, "switchboard.toml");
  writeFileSync(file, config);
  let fixture;
  try {
    fixture = await startProcess(
      switchboardBin(),
      ["serve", "--config", file, "--listen", `127.0.0.1:${port}`],
      { env },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  reapOnExit(fixture.child);
  const server = new Switchboard(fixture, dir);
  if (!ready) return server;
  try {
    await waitFor(async () => (await server.status("/health/ready")) === 200, {
      timeout: READY_TIMEOUT_MS,
      what: "/health/ready to answer 200",
    });
  } catch (err) {
    fixture.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${err.message}\nstderr: ${fixture.stderr}`);
  }
  return server;
}
