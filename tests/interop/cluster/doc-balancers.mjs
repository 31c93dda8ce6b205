// The load balancer configurations of docs/load-balancers.md, as the tests run them: each
// fenced block whose first line is `# <kind>: <variant>` (e.g. `# nginx: round-robin`),
// with the documentation's example addresses replaced by the test's.
//
// The documentation writes its three nodes as 10.0.0.11:3000, 10.0.0.12:3000 and
// 10.0.0.13:3000, listens on port 80 (`listen 80;`, `bind :80`) and trusts 10.0.0.0/8
// as proxies in front of nginx; the test's nodes, port and loopback take their places.
// Nothing else is changed, so the tests run the configurations users copy.

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../lib/wait.mjs";
import { startHaproxyConfig } from "./haproxy.mjs";
import { startNginx } from "./nginx.mjs";

const DOC = resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs/load-balancers.md");
const EXAMPLE_NODES = ["10.0.0.11:3000", "10.0.0.12:3000", "10.0.0.13:3000"];

/** Every `# kind: variant` block of the documentation, by its first line's title. */
export function docConfigs() {
  const text = readFileSync(DOC, "utf8");
  const blocks = new Map();
  for (const [, body] of text.matchAll(/```(?:nginx|haproxy)\n([\s\S]*?)```/g)) {
    const title = body.split("\n")[0].replace(/^#\s*/, "");
    blocks.set(title, body);
  }
  return blocks;
}

/** `text` with the example nodes, port and proxies replaced by the test's. */
function adapt(text, ports, port) {
  let out = text;
  EXAMPLE_NODES.forEach((node, i) => {
    if (ports[i] === undefined) throw new Error(`the documentation's ${node} needs a node`);
    out = out.replaceAll(node, `127.0.0.1:${ports[i]}`);
  });
  return out
    .replace(/listen 80;/g, `listen 127.0.0.1:${port};`)
    .replace(/bind :80\b/g, `bind 127.0.0.1:${port}`)
    .replace(/set_real_ip_from 10\.0\.0\.0\/8;/g, "set_real_ip_from 127.0.0.1;");
}

/**
 * Starts the documented balancer `title` (e.g. `nginx: round-robin`) in front of the
 * nodes on `ports`; resolves with `{ url, stop() }`. An nginx variant made of an
 * `upstream` alone (the sticky one) takes the rest (map, server) from the round-robin
 * block, as the documentation says to.
 */
export async function startDocBalancer(title, ports) {
  const configs = docConfigs();
  let text = configs.get(title);
  if (!text) throw new Error(`docs/load-balancers.md has no block titled "# ${title}"`);
  const port = await freePort();
  if (title.startsWith("nginx:")) {
    if (!text.includes("server {")) {
      const base = configs.get("nginx: round-robin").replace(/upstream switchboard \{[\s\S]*?\n\}\n/, "");
      text = `${base}\n${text}`;
    }
    return startNginx(adapt(text, ports, port), port);
  }
  return startHaproxyConfig(adapt(text, ports, port), port);
}
