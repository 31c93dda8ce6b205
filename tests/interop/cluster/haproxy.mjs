// A round-robin HTTP load balancer (Debian's HAProxy) in front of cluster nodes, with no
// stickiness of any kind: every HTTP request (each long-polling GET and POST, each
// WebSocket handshake) goes to the next live node. Node.js Socket.IO needs sticky
// sessions behind it; Switchboard must not.
//
// The program is `HAPROXY_BIN` if set, else `haproxy` from PATH, else /usr/sbin/haproxy.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createConnection } from "node:net";
import { join } from "node:path";
import { reapOnExit, removeOnExit } from "../lib/reaper.mjs";
import { freePort, portOpen, waitFor } from "../lib/wait.mjs";

/** Safety net for start-up. */
const START_TIMEOUT_MS = 10_000;
/** Keep this much of HAProxy's output to explain a failure. */
const OUTPUT_KEEP = 16 * 1024;

function haproxyBin() {
  if (process.env.HAPROXY_BIN) return process.env.HAPROXY_BIN;
  if (spawnSync("haproxy", ["-v"], { stdio: "ignore" }).status === 0) return "haproxy";
  if (existsSync("/usr/sbin/haproxy")) return "/usr/sbin/haproxy";
  return "haproxy";
}

/**
 * The configuration: HTTP mode (so each request is balanced on its own; WebSocket
 * upgrades become tunnels), `balance roundrobin`, no cookies or stick tables.
 * Timeouts: `server`/`client` above the 25 s ping interval and any long-poll the nodes
 * may hold; `tunnel` keeps WebSockets open. TCP health checks every 200 ms take a dead
 * node out at once, and `redispatch` sends a refused connection to another node, so
 * clients reconnecting after a crash land on a live node.
 *
 * A TCP check passes on a frozen (SIGSTOPped) node: the kernel still accepts its
 * connections. With `httpCheck` the check is an HTTP request the node itself must
 * answer instead (`GET /socket.io/?EIO=3`, which every Engine.IO v4 server refuses at
 * once with a 400, creating nothing), within `timeout check`, twice in a row, so a
 * frozen node leaves the rotation within a few seconds and returns when it wakes.
 */
function config({ port, statsPort, adminSocket, backends, httpCheck = false }) {
  return `global
  maxconn 4096
  stats socket ${adminSocket} mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout http-keep-alive 10s
  retries 2
  option redispatch 1

frontend socketio
  bind 127.0.0.1:${port}
  default_backend nodes

backend nodes
  balance roundrobin
${httpCheck ? HTTP_CHECK : "  default-server check inter 200ms fall 1 rise 1\n"}${backends.map((b, i) => `  server n${i} 127.0.0.1:${b}`).join("\n")}

frontend stats
  bind 127.0.0.1:${statsPort}
  stats enable
  stats uri /stats
`;
}

/**
 * The `httpCheck` health check. One second per answer: a debug build on a loaded
 * machine is slow, and one missed answer does not take a node out (`fall 2`).
 */
const HTTP_CHECK = `  option httpchk
  http-check send meth GET uri /socket.io/?EIO=3&transport=polling
  http-check expect status 400
  timeout check 1s
  default-server check inter 200ms fall 2 rise 1
`;

/**
 * Starts HAProxy balancing over `ports` (the nodes' ports); resolves once it accepts.
 * `httpCheck`: see `config`.
 */
export async function startHaproxy(ports, { httpCheck = false } = {}) {
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-haproxy-")));
  const port = await freePort();
  const statsPort = await freePort();
  const adminSocket = join(dir, "admin.sock");
  const text = config({ port, statsPort, adminSocket, backends: ports, httpCheck });
  return spawnHaproxy({ dir, text, port, statsPort, adminSocket, ports });
}

/**
 * Starts HAProxy with a whole configuration `text` (its `global` section is added) that
 * listens on `port`; resolves once it accepts. Statistics and the runtime API are not
 * available unless the text provides them as `startHaproxy`'s does.
 */
export async function startHaproxyConfig(text, port) {
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-haproxy-")));
  return spawnHaproxy({ dir, text: `global\n  maxconn 4096\n\n${text}`, port, ports: [] });
}

async function spawnHaproxy({ dir, text, port, statsPort, adminSocket, ports }) {
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, text);
  const child = spawn(haproxyBin(), ["-f", file, "-db"], { stdio: ["ignore", "pipe", "pipe"] });
  reapOnExit(child);
  const lb = new Haproxy({ child, dir, port, statsPort, adminSocket, ports });
  const exited = new Promise((_, reject) => {
    child.once("error", (err) => reject(new Error(`cannot start haproxy: ${err.message}`)));
    child.once("exit", (code, signal) =>
      reject(new Error(`haproxy exited (code ${code}, signal ${signal})\n${lb.output}`)),
    );
  });
  exited.catch(() => {});
  await Promise.race([
    exited,
    waitFor(() => portOpen(port), { timeout: START_TIMEOUT_MS, what: `haproxy on port ${port}` }),
  ]);
  return lb;
}

export class Haproxy {
  constructor({ child, dir, port, statsPort, adminSocket, ports }) {
    this.child = child;
    this.adminSocket = adminSocket;
    this.dir = dir;
    this.port = port;
    this.statsPort = statsPort;
    this.ports = ports;
    this.output = "";
    const keep = (chunk) => {
      if (process.env.INTEROP_VERBOSE) process.stderr.write(`[haproxy] ${chunk}`);
      this.output = (this.output + chunk).slice(-OUTPUT_KEEP);
    };
    child.stdout.setEncoding("utf8").on("data", keep);
    child.stderr.setEncoding("utf8").on("data", keep);
    this.exited = new Promise((resolve) => child.once("exit", resolve));
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Per backend node port: HTTP requests it was sent so far (`stot` in HAProxy's
   * statistics, which counts every request in HTTP mode) and whether HAProxy sees it up.
   */
  async stats() {
    const res = await fetch(`http://127.0.0.1:${this.statsPort}/stats;csv`);
    const [header, ...rows] = (await res.text()).replace(/^# /, "").trim().split("\n");
    const cols = header.split(",");
    const out = new Map();
    for (const row of rows) {
      const cells = row.split(",");
      const rec = Object.fromEntries(cols.map((c, i) => [c, cells[i]]));
      if (rec.pxname !== "nodes" || !/^n\d+$/.test(rec.svname)) continue;
      out.set(this.ports[Number(rec.svname.slice(1))], {
        requests: Number(rec.stot),
        up: rec.status.startsWith("UP"),
        // What the last health check saw (e.g. L4CON: refused, L4TOK: accepted), to
        // explain a node that never comes up.
        status: rec.status,
        check: rec.check_status,
        checkDesc: rec.check_desc,
      });
    }
    return out;
  }

  /** Waits until HAProxy's health checks see the node on `port` up (or down). */
  async waitUntil(port, up) {
    let seen;
    try {
      await waitFor(
        async () => {
          seen = (await this.stats()).get(port);
          return seen?.up === up;
        },
        { what: `haproxy to see port ${port} ${up ? "up" : "down"}` },
      );
    } catch (err) {
      err.message += `; HAProxy's last view of it: ${JSON.stringify(seen)}; its output:\n${this.output.slice(-2000)}`;
      throw err;
    }
  }

  /**
   * Takes the node on `port` out of rotation (`maint`) or puts it back (`ready`) through
   * HAProxy's runtime API, for a node that is alive but must not get new requests.
   */
  async setState(port, state) {
    const i = this.ports.indexOf(port);
    if (i === -1) throw new Error(`port ${port} is not a backend`);
    const reply = await new Promise((resolve, reject) => {
      const socket = createConnection(this.adminSocket);
      let out = "";
      socket.setEncoding("utf8").on("data", (c) => (out += c));
      socket.once("error", reject);
      socket.once("end", () => resolve(out));
      socket.once("connect", () => socket.end(`set server nodes/n${i} state ${state}\n`));
    });
    if (reply.trim()) throw new Error(`haproxy: ${reply.trim()}`);
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
