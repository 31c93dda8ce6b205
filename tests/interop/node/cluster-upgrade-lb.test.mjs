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
// Expected to FAIL against an all-Node cluster (CLUSTER_SWITCHBOARD_CMD=node
// .../node-server.mjs): Node.js Socket.IO needs sticky sessions behind this balancer.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { call, connected, upgradedTo } from "../lib/client.mjs";
import {
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
  });
}
