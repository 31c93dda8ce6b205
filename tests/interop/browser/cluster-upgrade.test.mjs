// WebSocket upgrades behind round-robin load balancers, in headless Chromium: pages on
// another origin open the official bundle with its default transports (polling, then
// the upgrade) against HAProxy, then nginx, in front of three Switchboard nodes
// (redis-streams). The balancer sends each HTTP request, the WebSocket included, to the
// next node; a node that does not own a page's session relays its WebSocket to the
// owner. Every page must end on WebSocket and receive every event broadcast during the
// upgrades once, in order: everything published after its `connect` resolved (over
// polling, then over WebSocket), whenever its upgrade finished. Any uncaught exception
// or console error in the pages fails the test.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { Clients, call } from "../lib/client.mjs";
import { startCluster } from "../cluster/cluster.mjs";
import { startDocBalancer } from "../cluster/doc-balancers.mjs";
import { startHaproxy } from "../cluster/haproxy.mjs";
import { startRedis } from "../cluster/redis.mjs";
import { WEBSOCKET, assertEveryNumberFromTo, numberedPublisher } from "../cluster/support.mjs";
import { waitFor } from "../lib/wait.mjs";
import { CHROMIUM, CHROMIUM_ARGS, startSite } from "./harness.mjs";

/** Pages: with three nodes, chance alone would upgrade one in three. */
const PAGES = 6;
const PUBLISH_EVERY_MS = 5;
/** Acknowledged publishes after every page settled on WebSocket, before publishing stops. */
const AFTER_UPGRADES = 20;

/**
 * The balancers: the tests' HAProxy (its health check needs no `/health/ready`, which
 * the protocol fixture does not serve) and docs/load-balancers.md's nginx as written.
 */
const BALANCERS = [
  { name: "HAProxy", start: (ports) => startHaproxy(ports) },
  { name: "nginx", start: (ports) => startDocBalancer("nginx: round-robin", ports) },
];

for (const balancer of BALANCERS) {
  describe(`browser pages behind round-robin ${balancer.name} (adapter redis-streams)`, () => {
    let redis;
    let cluster;
    let lb;
    let site;
    let browser;
    const clients = new Clients();
    const pageErrors = [];
    before(async () => {
      redis = await startRedis();
      cluster = await startCluster({ adapter: "redis-streams", redisUrl: redis.url, switchboard: 3 });
      lb = await balancer.start(cluster.switchboard.map((n) => n.port));
      site = await startSite();
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    });
    after(async () => {
      clients.closeAll();
      await browser?.close();
      site?.close();
      try {
        await lb?.stop();
        await cluster?.stop();
      } finally {
        await redis?.close();
      }
    });

    test(`${PAGES} pages all end on WebSocket and get every event broadcast across their upgrades once, in order`, async () => {
      const siteUrl = `http://127.0.0.1:${site.address().port}/`;
      // Numbered events to every socket (no room: a page receives them from its CONNECT
      // on, while its upgrade is under way) from a publisher on one node, from before the pages
      // connect until they have all upgraded.
      const publisher = (await clients.connect(cluster.switchboard[0].url, WEBSOCKET)).socket;
      // How many publishes were acknowledged: 0 .. acked - 1.
      let acked = 0;
      const publishing = numberedPublisher(async (n) => {
        assert.deepEqual(await call(publisher, "broadcast-flags", null, {}, "seq", n), [true]);
        acked = n + 1;
      }, PUBLISH_EVERY_MS);
      const pages = [];
      // Per page, `acked` once its connect resolved. Number `acked` itself may have been
      // published before the page's CONNECT; `acked + 1` was published after its ack, so
      // after the page connected: the page must have every number from there on.
      const ackedAtConnect = [];
      for (let i = 0; i < PAGES; i++) {
        const ctx = await browser.newContext();
        const page = await ctx.newPage();
        page.on("pageerror", (err) => pageErrors.push(String(err)));
        page.on("console", (msg) => {
          if (msg.type() === "error") pageErrors.push(`${msg.text()} (${msg.location().url})`);
        });
        await page.goto(siteUrl);
        await page.evaluate((url) => window.harness.connect(url, {}), lb.url);
        ackedAtConnect.push(acked);
        pages.push(page);
      }
      const transports = await Promise.allSettled(
        pages.map((p) => p.evaluate(() => window.harness.settleOn("websocket"))),
      );
      // Some events after the last upgrade too, all over WebSocket.
      const settled = acked;
      await waitFor(() => acked >= settled + AFTER_UPGRADES, {
        what: `${AFTER_UPGRADES} more acknowledged publishes`,
      });
      const published = await publishing.stop();

      assert.deepEqual(
        transports.map((t) => (t.status === "fulfilled" ? t.value : String(t.reason))),
        Array(PAGES).fill("websocket"),
        "every page upgraded",
      );
      const last = published - 1;
      for (const [i, page] of pages.entries()) {
        // Each event's first argument is its number (an offset may follow it).
        const seen = await page.evaluate(async (last) => {
          const deadline = Date.now() + 10000;
          const numbers = () => window.harness.received("seq").map((args) => args[0]);
          while (numbers().at(-1) !== last && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 20));
          }
          return numbers();
        }, last);
        assertEveryNumberFromTo(seen, ackedAtConnect[i] + 1, last, `page ${i}`);
        assert.deepEqual(await page.evaluate(() => window.harness.call("message-with-ack", "ping")), [
          "ping",
        ]);
      }
      assert.deepEqual(pageErrors, [], `page errors: ${pageErrors.join(" | ")}`);
    });
  });
}
