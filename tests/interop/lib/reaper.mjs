// Cleans up after a test file that exits without running its `after` hooks (a crash,
// a file-level timeout, Ctrl-C): kills the child processes it started, so no
// redis-server or node keeps a port, and removes their temporary directories. Normal
// clean-up stays in the tests' `after` hooks.

import { rmSync } from "node:fs";

const children = new Set();
const dirs = new Set();
let installed = false;

function install() {
  if (installed) return;
  installed = true;
  process.once("exit", () => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  process.once("SIGINT", () => process.exit(130));
  process.once("SIGTERM", () => process.exit(143));
}

/** Registers `child` (a ChildProcess) until it exits. */
export function reapOnExit(child) {
  install();
  children.add(child);
  child.once("exit", () => children.delete(child));
}

/** Registers a temporary directory to remove when the process exits. */
export function removeOnExit(dir) {
  install();
  dirs.add(dir);
  return dir;
}
