// Waiting for conditions with a deadline instead of sleeping, and free TCP ports for
// the services a test starts (redis-server, HAProxy) that cannot pick their own.

import { createConnection, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** Safety net for one wait; never an assertion on speed. */
export const WAIT_MS = 10_000;

/**
 * Polls `check` (sync or async) every `interval` ms until it returns a truthy value,
 * which is returned. Rejects after `timeout` ms, naming `what` and the last value or
 * error `check` produced, so a failure says what was still missing.
 */
export async function waitFor(check, { timeout = WAIT_MS, interval = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

/**
 * A TCP port that was free a moment ago on 127.0.0.1. Another process may take it
 * before the caller binds it, so callers retry on a bind failure.
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` right now. */
export function portOpen(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Freezes process `pid` (SIGSTOP); resolves once every thread of it is stopped.
 * kill(2) returns once the signal is queued: the other threads of a multi-threaded
 * process (a Switchboard node's runtime workers) run on until one thread takes it,
 * and on a busy machine they answered what a test sent just after the kill.
 */
export async function freeze(pid) {
  process.kill(pid, "SIGSTOP");
  const { readdirSync, readFileSync } = await import("node:fs");
  await waitFor(
    () =>
      readdirSync(`/proc/${pid}/task`).every((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        // The state follows the command name, which is in parentheses.
        return "Tt".includes(stat[stat.lastIndexOf(")") + 2]);
      }),
    { interval: 1, what: `every thread of process ${pid} to be stopped` },
  );
}
