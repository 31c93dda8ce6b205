// nginx (Debian's package) in front of cluster nodes, with a configuration the test
// provides for the `http` context (an upstream, a server): this file wraps it in what
// running it unprivileged from a temporary directory needs, in the foreground, as one
// process.
//
// The program is `NGINX_BIN` if set, else /usr/sbin/nginx, else `nginx` from PATH.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reapOnExit, removeOnExit } from "../lib/reaper.mjs";
import { portOpen, waitFor } from "../lib/wait.mjs";

/** Safety net for start-up. */
const START_TIMEOUT_MS = 10_000;
/** Keep this much of nginx's output to explain a failure. */
const OUTPUT_KEEP = 16 * 1024;

function nginxBin() {
  if (process.env.NGINX_BIN) return process.env.NGINX_BIN;
  return existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
}

/** The main configuration around `http` (the test's part of the `http` context). */
function mainConfig(dir, http) {
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((t) => `  ${t}_temp_path ${join(dir, t)};`)
    .join("\n");
  return `daemon off;
master_process off;
pid ${join(dir, "nginx.pid")};
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
${temp}

${http}
}
`;
}

/**
 * Starts nginx with `http` (text for the `http` context) listening on `port`; resolves
 * with `{ url, stop() }` once it accepts.
 */
export async function startNginx(http, port) {
  const dir = removeOnExit(mkdtempSync(join(tmpdir(), "switchboard-nginx-")));
  for (const t of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, t));
  const file = join(dir, "nginx.conf");
  writeFileSync(file, mainConfig(dir, http));
  const child = spawn(nginxBin(), ["-p", dir, "-c", file, "-e", "stderr"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  reapOnExit(child);
  let output = "";
  const keep = (chunk) => {
    if (process.env.INTEROP_VERBOSE) process.stderr.write(`[nginx] ${chunk}`);
    output = (output + chunk).slice(-OUTPUT_KEEP);
  };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  const exitedPromise = new Promise((resolve) => child.once("exit", resolve));
  const exited = new Promise((_, reject) => {
    child.once("error", (err) => reject(new Error(`cannot start nginx: ${err.message}`)));
    child.once("exit", (code, signal) =>
      reject(new Error(`nginx exited (code ${code}, signal ${signal})\n${output}`)),
    );
  });
  exited.catch(() => {});
  await Promise.race([
    exited,
    waitFor(() => portOpen(port), { timeout: START_TIMEOUT_MS, what: `nginx on port ${port}` }),
  ]);
  return {
    url: `http://127.0.0.1:${port}`,
    get output() {
      return output;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGQUIT");
        await exitedPromise;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
