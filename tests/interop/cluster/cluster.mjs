// Starts cluster members for the cluster tests: Switchboard nodes (`protocol_fixture
// cluster`) and Node.js Socket.IO nodes (`node-server.mjs`), all implementing
// CONTRACT.md, on one Redis. Each node can be stopped, killed and restarted on its port.
//
// Which program a "switchboard" node runs, in order of precedence:
// - `CLUSTER_SWITCHBOARD_CMD`: a whole command (split on whitespace), e.g.
//   `node /abs/path/tests/interop/cluster/node-server.mjs`, to run every test against
//   Node stand-ins and so check the tests themselves;
// - `PROTOCOL_FIXTURE_BIN`;
// - `<repo>/target/debug/examples/protocol_fixture`.
// Either way the arguments `cluster --port P --host 127.0.0.1 --adapter A
// [--redis-url U] --name N --recovery` are appended, then the node's `extraArgs`.

import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startProcess } from "../lib/fixture.mjs";
import { reapOnExit } from "../lib/reaper.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, "../../..");
const DEFAULT_BIN = resolve(REPO_ROOT, "target/debug/examples/protocol_fixture");
export const NODE_SERVER = resolve(HERE, "node-server.mjs");
const HOST = "127.0.0.1";
/** A restart on the same port retries this long while the old listener goes away. */
const REBIND_MS = 5_000;

function switchboardCommand() {
  const custom = process.env.CLUSTER_SWITCHBOARD_CMD?.trim();
  if (custom) {
    const [cmd, ...args] = custom.split(/\s+/);
    return { cmd, args };
  }
  const bin = process.env.PROTOCOL_FIXTURE_BIN || DEFAULT_BIN;
  if (!existsSync(bin)) {
    throw new Error(
      `fixture binary not found at ${bin}: run \`cargo build --workspace --examples\` ` +
        "or set PROTOCOL_FIXTURE_BIN / CLUSTER_SWITCHBOARD_CMD",
    );
  }
  return { cmd: bin, args: [] };
}

function command(kind) {
  if (kind === "switchboard") return switchboardCommand();
  if (kind === "node") return { cmd: process.execPath, args: [NODE_SERVER] };
  throw new Error(`unknown node kind ${kind}`);
}

/** Whether switchboard nodes are really Node stand-ins (for messages only). */
export const switchboardIsStandIn = () => Boolean(process.env.CLUSTER_SWITCHBOARD_CMD?.trim());

/**
 * One cluster member. `url` is `http://127.0.0.1:PORT`; the port and name survive a
 * restart, so clients and the load balancer find it again.
 */
export class ClusterNode {
  constructor({ kind, name, adapter, redisUrl, extraArgs = [] }) {
    this.kind = kind;
    this.name = name;
    this.adapter = adapter;
    this.redisUrl = redisUrl;
    this.extraArgs = extraArgs;
    this.port = 0;
    this.fixture = null;
  }

  get url() {
    return `http://${HOST}:${this.port}`;
  }

  get running() {
    const child = this.fixture?.child;
    return Boolean(child && child.exitCode === null && child.signalCode === null);
  }

  /** Starts the process (on the node's port after the first start). */
  async start() {
    const { cmd, args } = command(this.kind);
    const fullArgs = [
      ...args,
      "cluster",
      "--port", String(this.port),
      "--host", HOST,
      "--adapter", this.adapter,
      ...(this.redisUrl ? ["--redis-url", this.redisUrl] : []),
      "--name", this.name,
      "--recovery",
      ...this.extraArgs,
    ];
    const deadline = Date.now() + REBIND_MS;
    for (;;) {
      try {
        this.fixture = await startProcess(cmd, fullArgs);
        break;
      } catch (err) {
        if (this.port === 0 || !err.exitedEarly || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    reapOnExit(this.fixture.child);
    this.port = this.fixture.port;
    return this;
  }

  /**
   * Sends `signal` (SIGTERM: graceful drain, which must exit 0) and waits for the exit.
   * Throws if the node had died on its own; see `Fixture.stop`.
   */
  async stop(signal = "SIGTERM") {
    if (!this.fixture) return undefined;
    return this.fixture.stop(signal);
  }

  /** A crash: SIGKILL. */
  kill() {
    return this.stop("SIGKILL");
  }

  /** Freezes the process (SIGSTOP): it holds its connections but handles nothing. */
  pause() {
    this.fixture.child.kill("SIGSTOP");
  }

  /** Lets a paused process run again (SIGCONT). */
  resume() {
    this.fixture.child.kill("SIGCONT");
  }

  /** Starts the node again on the same port (after `stop` or `kill`). */
  async restart() {
    if (this.running) throw new Error(`${this.name} is still running`);
    return this.start();
  }

  /** Stderr kept from the current process, to explain a failure. */
  get stderr() {
    return this.fixture?.stderr ?? "";
  }
}

/**
 * Starts `switchboard` Switchboard nodes (named `sb-1`, `sb-2`, ...) and `node` Node.js
 * nodes (`node-1`, ...), in parallel, all with `adapter` on `redisUrl`. `extraArgs`
 * go to the Switchboard nodes only (flags of CONTRACT.md only they know), `nodeArgs`
 * to the Node.js nodes only (e.g. the same `--subscription-mode`).
 */
export async function startCluster({
  adapter,
  redisUrl,
  switchboard = 3,
  node = 0,
  extraArgs = [],
  nodeArgs = [],
}) {
  const make = (kind, prefix, count) =>
    Array.from(
      { length: count },
      (_, i) =>
        new ClusterNode({
          kind,
          name: `${prefix}-${i + 1}`,
          adapter,
          redisUrl,
          extraArgs: kind === "switchboard" ? extraArgs : nodeArgs,
        }),
    );
  const nodes = [...make("switchboard", "sb", switchboard), ...make("node", "node", node)];
  const cluster = new Cluster(nodes);
  const started = await Promise.allSettled(nodes.map((n) => n.start()));
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await cluster.stop().catch(() => {});
    throw failed.reason;
  }
  return cluster;
}

export class Cluster {
  constructor(nodes) {
    this.nodes = nodes;
  }

  get switchboard() {
    return this.nodes.filter((n) => n.kind === "switchboard");
  }

  get node() {
    return this.nodes.filter((n) => n.kind === "node");
  }

  byName(name) {
    const found = this.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no node named ${JSON.stringify(name)}`);
    return found;
  }

  /**
   * Stops every running node gracefully. Throws (after stopping the others) if one of
   * them had died on its own or did not drain cleanly.
   */
  async stop() {
    const results = await Promise.allSettled(
      this.nodes.filter((n) => n.fixture && !n.fixture.stopRequested).map((n) => n.stop()),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }
}
