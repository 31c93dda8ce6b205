// WebSocket upgrades behind a plain round-robin load balancer. Official clients start on
// long-polling (their default) behind HAProxy in front of three Switchboard nodes, each
// HTTP request going to the next node; the WebSocket that upgrades a client usually
// lands on a node that does not own its session, which relays it to the owner. Every
// client must end on WebSocket, and numbered events broadcast to all of them throughout
// the upgrades must arrive exactly once and in order.
//
// Before the relay, a client whose WebSocket reached another node got 400 and stayed on
// polling for good: with three nodes, two clients in three.
//
// And the drain of a relaying node: once the owner answered the client's probe, the
// official client pauses polling and waits to send its `upgrade` packet on the relayed
// WebSocket; a relay ended right then left it paused, hearing nothing, until its ping
// timeout (seen in the rolling restart, about once in 100 loaded runs). The test below
// holds a client exactly there with a slow link, drains the relaying node, and checks
// that the client completes its upgrade and then reconnects.
//
// Expected to FAIL against an all-Node cluster (CLUSTER_SWITCHBOARD_CMD=node
// .../node-server.mjs): Node.js Socket.IO needs sticky sessions behind this balancer.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { call, connected, once, upgradedTo } from "../lib/client.mjs";
import { startFlapProxy } from "../cluster/flap-proxy.mjs";
import { waitFor } from "../lib/wait.mjs";
import {
  RECONNECT,
  UPGRADE,
  WEBSOCKET,
  numberedPublisher,
  receivesEveryNumberTo,
  useCluster,
  withoutOffset,
} from "../cluster/support.mjs";

/** Clients behind the balancer: with three nodes, chance alone upgrades one in three. */
const CLIENTS = 12;
/** Events broadcast while the clients connect and upgrade, one every PUBLISH_EVERY_MS. */
const PUBLISH_EVERY_MS = 5;
/** How long a client may take to upgrade (a safety net, not a speed claim). */
const UPGRADE_WAIT_MS = 15_000;

for (const adapter of ["redis-streams", "redis"]) {
  describe(`polling → WebSocket upgrades behind round-robin HAProxy (adapter ${adapter})`, () => {
    const ctx = useCluster({ adapter, haproxy: true });

    test(`${CLIENTS} clients all end on WebSocket and miss, repeat or reorder no event broadcast across their upgrades`, async () => {
      // The publisher talks to one node directly, over WebSocket, and sends numbered
      // events to every socket (no room: a client receives them from its CONNECT on,
      // while its upgrade is under way) from before the clients connect until all have upgraded.
      const publisher = (await ctx.clients.connect(ctx.cluster.switchboard[0].url, WEBSOCKET)).socket;
      const publishing = numberedPublisher(async (n) => {
        assert.deepEqual(await call(publisher, "broadcast-flags", null, {}, "seq", n), [true]);
      }, PUBLISH_EVERY_MS);

      const problems = [];
      const members = [];
      for (let i = 0; i < CLIENTS; i++) {
        const socket = ctx.clients.open(ctx.lb.url, UPGRADE);
        const member = { socket, seen: [], upgraded: null, seenBeforeUpgrade: 0 };
        socket.on("connect_error", (err) => problems.push(`client ${i}: connect_error ${err.message}`));
        socket.on("disconnect", (reason) => problems.push(`client ${i}: disconnect ${reason}`));
        socket.on("seq", (...args) => member.seen.push(withoutOffset(args)[0]));
        members.push(member);
      }
      for (const m of members) {
        m.socket.connect();
        // Watched from the start: the upgrade may complete before `connect` resolves.
        m.upgraded = upgradedTo(m.socket, "websocket", UPGRADE_WAIT_MS).then(() => {
          m.seenBeforeUpgrade = m.seen.length;
        });
        m.upgraded.catch(() => {});
        await connected(m.socket);
      }
      const outcomes = await Promise.allSettled(members.map((m) => m.upgraded));
      await sleep(100);
      const published = await publishing.stop();

      const stuck = outcomes
        .map((o, i) => (o.status === "rejected" ? `client ${i} on ${members[i].socket.io.engine?.transport?.name}` : null))
        .filter(Boolean);
      assert.deepEqual(stuck, [], "every client upgraded to WebSocket");
      for (const m of members) assert.equal(m.socket.io.engine.transport.name, "websocket");

      // From its connection on, every client got every number once, in order, up to the last.
      const last = published - 1;
      for (const [i, m] of members.entries()) {
        await receivesEveryNumberTo(() => m.seen, last, `client ${i}`);
      }
      const across = members.filter((m) => m.seenBeforeUpgrade > 0).length;
      console.log(`  ${published} events; ${across} of ${CLIENTS} clients received some before their upgrade completed`);
      assert.deepEqual(problems, [], "no connect error or disconnect");

      // And the upgraded connections carry both ways: an ack round trip on each.
      for (const m of members) assert.deepEqual(await call(m.socket, "message-with-ack", "ping"), ["ping"]);
    });

    if (adapter === "redis-streams") {
      test("a client whose relayed upgrade is under way when the relaying node drains completes it, then reconnects when that node stops", async () => {
        const [owner, relaying, other] = ctx.cluster.switchboard;
        // The client's HTTP requests reach its session's node through a link the test
        // can slow down; its WebSocket goes to another node, which relays it to the owner.
        const link = await startFlapProxy(owner.port);
        const t0 = performance.now();
        const story = [];
        const note = (what) => story.push(`${((performance.now() - t0) / 1000).toFixed(3)} ${what}`);
        try {
          const publisher = (await ctx.clients.connect(other.url, WEBSOCKET)).socket;
          const socket = ctx.clients.open(link.url, UPGRADE, {
            ...RECONNECT,
            transportOptions: { websocket: { port: relaying.port } },
          });
          const marks = [];
          socket.on("mark", (...args) => marks.push(withoutOffset(args)[0]));
          socket.on("connect", () => note(`connect (recovered ${socket.recovered})`));
          socket.on("disconnect", (reason) => note(`disconnect (${reason})`));
          // From the moment the session opens, the owner's answers wait in the link: the
          // poll in flight when the probe is answered cannot complete, so the client stays
          // in the middle of its upgrade (polling paused, `5` not sent) until release.
          socket.io.once("open", () => {
            const engine = socket.io.engine;
            link.hold();
            engine.on("upgrade", (t) => note(`upgraded to ${t.name}`));
            engine.on("upgradeError", (e) => note(`upgrade error: ${e.message}`));
          });
          const upgrading = once(socket.io, "open").then(() => once(socket.io.engine, "upgrading"));
          socket.connect();
          await upgrading;
          note(`probe answered through ${relaying.name}; draining it`);
          const stopping = relaying.stop("SIGTERM");
          // Time for the drain to end the relay if it would (it did, at once).
          const exited = await Promise.race([stopping.then(() => true), sleep(1500).then(() => false)]);
          note(exited ? `${relaying.name} exited` : `${relaying.name} still draining`);
          link.release();
          await waitFor(() => story.some((l) => l.includes("upgraded to websocket")), {
            what: "the client to complete its upgrade through the draining node",
            timeout: 5000,
          }).catch((err) => assert.fail(`${err.message}; ${story.join(", ")}`));
          await stopping; // the drain ends once the `upgrade` packet has gone by
          // The relay ended with the node: the client, on that WebSocket now, notices at
          // once, reconnects (to its owner, through the link) and receives again.
          await waitFor(() => story.some((l) => l.includes("disconnect")) && socket.connected, {
            what: "the client to reconnect after the relaying node stopped",
          }).catch((err) => assert.fail(`${err.message}; ${story.join(", ")}`));
          let n = 0;
          await waitFor(
            async () => {
              await call(publisher, "broadcast-flags", null, {}, "mark", n++);
              return marks.length > 0;
            },
            { what: "the client to receive a broadcast again" },
          ).catch((err) => assert.fail(`${err.message}; ${story.join(", ")}`));
        } finally {
          link.release();
          ctx.clients.closeAll();
          await link.close();
          if (!relaying.running) await relaying.restart();
        }
      });
    }
  });
}
