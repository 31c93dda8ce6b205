// Redis Sentinel: two Switchboard nodes reach their Redis through three Sentinels
// (`redis+sentinel://…/mymaster`) watching a master and two replicas. A publisher on one
// node sends numbered events to a room at a steady rate while the master is SIGKILLed;
// the Sentinels promote a replica, and the nodes must follow: with `redis-streams` (and
// `--replicas-to-ack 1`, so an event is acknowledged only once a replica holds it)
// every acknowledged event reaches every subscriber on both nodes, once and in order,
// across the failover; with the `redis` (pub/sub) adapter, at most once as always (what
// is published before the nodes find the new master is lost), and once broadcasts flow
// between the nodes again, every acknowledged one reaches every subscriber. A third node,
// the shipped `switchboard serve`, shows the gap in its readiness: `/health/ready`
// turns 503 after the kill and 200 again once it works with the new master.
//
// Switchboard only: CLUSTER_SWITCHBOARD_CMD (Node servers) is not supported here.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Clients } from "../lib/client.mjs";
import { ServeNode, serveConfig } from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";
import { startCluster, switchboardIsStandIn } from "../cluster/cluster.mjs";
import { deadSentinel, startSentinelSetup } from "../cluster/sentinel.mjs";
import { WEBSOCKET, fresh, withoutOffset } from "../cluster/support.mjs";

/** Acknowledged events wanted before the kill, and after the new master is known. */
const BEFORE = 30;
const AFTER = 30;
const PUBLISH_EVERY_MS = 20;
/** Resolves with `promise`, or fails the test after `ms`. */
function within(promise, ms, what) {
  return Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }),
  ]);
}

/** A publish may wait this long while the nodes find the new master. */
const ACK_TIMEOUT_MS = 15_000;

for (const adapter of ["redis-streams", "redis"]) {
  describe(`Sentinel failover under a steady publish (adapter ${adapter})`, { skip: switchboardIsStandIn() }, () => {
    let setup;
    let cluster;
    let serve;
    const clients = new Clients();
    before(async () => {
      // The pub/sub run's Sentinels require a password (the URL's sentinel_password).
      setup = await startSentinelSetup({
        replicas: 2,
        sentinelPassword: adapter === "redis" ? "sentinel-secret-1" : undefined,
      });
      cluster = await startCluster({
        adapter,
        redisUrl: setup.url,
        switchboard: 2,
        extraArgs: adapter === "redis-streams" ? ["--replicas-to-ack", "1"] : [],
      });
      const name = "sb-serve";
      serve = new ServeNode({ name, config: serveConfig({ name, adapter, redisUrl: setup.url }) });
      await serve.start();
    });
    after(async () => {
      clients.closeAll();
      try {
        await serve?.stop();
        await cluster?.stop();
      } finally {
        await setup?.close();
      }
    });

    test("the nodes follow the promoted replica; acknowledged events are not lost", async () => {
      const room = fresh("sentinel");
      const subscribers = [];
      for (const node of cluster.switchboard) {
        for (let k = 0; k < 2; k++) {
          const { socket } = await clients.connect(node.url, WEBSOCKET);
          assert.deepEqual(await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("join", room), true);
          const seen = [];
          socket.on("seq", (...args) => seen.push(withoutOffset(args)[0]));
          subscribers.push({ node: node.name, seen });
        }
      }
      const { socket: publisher } = await clients.connect(cluster.switchboard[0].url, WEBSOCKET);

      const acked = [];
      let failedOver = false;
      let ackedAfter = 0;
      const oldMaster = await setup.masterPort();
      let n = 0;
      const publish = async () => {
        const number = n++;
        const answer = await publisher
          .timeout(ACK_TIMEOUT_MS)
          .emitWithAck("broadcast", room, "seq", number)
          .catch(() => null);
        if (answer === true) {
          acked.push(number);
          if (failedOver) ackedAfter++;
        }
      };
      while (acked.length < BEFORE) {
        await publish();
        await sleep(PUBLISH_EVERY_MS);
      }
      assert.equal(await serve.server.status("/health/ready"), 200, "ready before the kill");
      await setup.master.kill();
      const readiness = [];
      const probing = (async () => {
        while (!failedOver || readiness.at(-1) !== 200) {
          readiness.push(await serve.server.status("/health/ready"));
          await sleep(100);
        }
      })();
      const watch = waitFor(async () => (await setup.masterPort().catch(() => oldMaster)) !== oldMaster, {
        what: "the Sentinels to promote a replica",
        timeout: 30_000,
      }).then(() => {
        failedOver = true;
      });
      while (!failedOver || ackedAfter < AFTER) {
        await publish();
        await sleep(PUBLISH_EVERY_MS);
      }
      await watch;
      await within(probing, 20_000, "the serve node to be ready again");
      assert.ok(readiness.includes(503), `not ready during the gap: ${readiness.join(",")}`);
      if (adapter === "redis") {
        // Pub/sub is at most once: what was published before the nodes found the new
        // master is lost (as across a Redis restart). Once every subscriber hears new
        // events again, every acknowledged one must arrive.
        const heard = subscribers.map((s) => s.seen.length);
        await waitFor(
          async () => {
            await publish();
            return subscribers.every((s, i) => s.seen.length > heard[i]);
          },
          { what: "broadcasts to flow between the nodes again", timeout: 20_000 },
        );
        const from = acked.length;
        for (let k = 0; k < AFTER; k++) {
          await publish();
          await sleep(PUBLISH_EVERY_MS);
        }
        const later = acked.slice(from);
        const settle = Date.now() + 20_000;
        while (!subscribers.every((s) => later.every((x) => s.seen.includes(x))) && Date.now() < settle) {
          await sleep(50);
        }
        for (const [i, s] of subscribers.entries()) {
          const missing = later.filter((x) => !s.seen.includes(x));
          assert.deepEqual(missing, [], `subscriber ${i} on ${s.node}: every event once the nodes moved`);
        }
      }

      const last = acked.at(-1);
      const deadline = Date.now() + 20_000;
      while (!subscribers.every((s) => s.seen.includes(last)) && Date.now() < deadline) await sleep(50);
      assert.deepEqual(
        subscribers.map((s) => `${s.node}: ${s.seen.at(-1)}`),
        subscribers.map((s) => `${s.node}: ${last}`),
        "every subscriber received the last acknowledged event",
      );
      for (const [i, s] of subscribers.entries()) {
        const increasing = s.seen.every((x, j) => j === 0 || x > s.seen[j - 1]);
        assert.ok(increasing, `subscriber ${i} on ${s.node}: once, in order: ${s.seen.join(",")}`);
        if (adapter === "redis-streams") {
          const missing = acked.filter((x) => !s.seen.includes(x));
          assert.deepEqual(missing, [], `subscriber ${i} on ${s.node}: every acknowledged event`);
        }
      }
      console.log(`  published ${n}, acknowledged ${acked.length} (${ackedAfter} after the failover)`);
    });

    // With every Sentinel gone while the master they named still answers, the node works
    // on and stays ready (a failover would go unseen until they answer again). Before,
    // each failed look at the Sentinels (every second) turned readiness to 503 until
    // the next PING turned it back: it flapped. Readiness is sampled until the node has
    // failed at least two lookups: where each Sentinel was, a stand-in counts the
    // connections (and closes them at once), and with the fixture nodes stopped every
    // one is the serve node's (it logs only the first failure).
    test("with every Sentinel gone and the master answering, the node stays ready", async () => {
      assert.equal(await serve.server.status("/health/ready"), 200, "ready before");
      for (const node of cluster.switchboard) await node.stop();
      for (const sentinel of setup.sentinels) await sentinel.stop();
      const standIns = [];
      try {
        for (const sentinel of setup.sentinels) standIns.push(await deadSentinel(sentinel.port));
        // A lookup asks every Sentinel in turn: the fewest connections any stand-in saw is
        // how many lookups reached them all, so once it is 3, two lookups have failed.
        const lookups = () => Math.min(...standIns.map((s) => s.connections));
        const samples = [];
        await waitFor(
          async () => {
            const seen = lookups();
            samples.push({ lookups: seen, status: await serve.server.status("/health/ready") });
            return seen >= 3;
          },
          { timeout: 30_000, interval: 50, what: "the serve node to fail two lookups at the stand-ins" },
        ).catch((err) => {
          throw new Error(`${err.message}; connections per stand-in: ${standIns.map((s) => s.connections)}`);
        });
        const readiness = samples.map((s) => s.status);
        assert.deepEqual([...new Set(readiness)], [200], `readiness: ${readiness.join(",")}`);
        // Sampled between the lookups too, when a failure had turned readiness to 503.
        for (const n of [1, 2]) {
          assert.ok(
            samples.some((s) => s.lookups === n),
            `readiness sampled after lookup ${n} reached every stand-in: ${JSON.stringify(samples)}`,
          );
        }
        assert.match(
          serve.server.stderr,
          /no master from the Sentinels[^\n]*no Sentinel answered/,
          "the node logged its lookups failing, no Sentinel answering",
        );
      } finally {
        for (const standIn of standIns) await standIn.close();
      }
    });
  });
}
