// A backend for `[hooks.webhook]`: a `node:http` server that checks each request's
// signature (crates/hooks/README.md), keeps the lifecycle events it receives and answers
// forwarded client events (`type: "event"`) with a reply the test chooses, e.g. an
// `emit` action back to the sender.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

/**
 * Starts the receiver. `secret` is `hooks.webhook.secret`; `reply(event)` gives the
 * body answered to a forwarded event (`{ack, actions}`, see crates/hooks/README.md;
 * default `{}`). Resolves with `{ url, hooks, forged, close() }`: `url` for
 * `hooks.webhook.url`, `hooks` every parsed body received (forwarded events too),
 * `forged` the bodies whose signature did not match (answered 401).
 */
export async function startWebhookReceiver({ secret, reply = () => ({}) }) {
  const hooks = [];
  const forged = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const ts = req.headers["switchboard-timestamp"];
      const want = Buffer.from(`v1=${createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex")}`);
      const got = Buffer.from(String(req.headers["switchboard-signature"] ?? ""));
      if (got.length !== want.length || !timingSafeEqual(got, want)) {
        forged.push(body);
        res.writeHead(401).end();
        return;
      }
      const hook = JSON.parse(body);
      hooks.push(hook);
      const answer = hook.type === "event" ? reply(hook) : {};
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    hooks,
    forged,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}
