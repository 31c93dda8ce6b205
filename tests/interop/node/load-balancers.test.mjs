// Every load balancer configuration of docs/load-balancers.md, as written there (only the
// addresses and ports replaced: cluster/doc-balancers.mjs), in front of three `switchboard
// serve` nodes over Redis Streams. Through each: official clients on WebSocket only, on
// polling only, and upgrading from polling (the default), while numbered events are
// published to all of them through one node's HTTP API. Every client must end on its
// transport and get every event published after it connected, once and in order.
//
// Round-robin balancers send most upgrades to a node that does not own the session,
// which relays them (`switchboard_upgrades_relayed_total` must grow); the sticky ones
// send every request of a client to one node (no relay at all), spreading the clients
// over the nodes: the cookie variant through the cookie the official client keeps
// (`withCredentials`), the `ip_hash` one through the client address a proxy in front
// reports in `X-Forwarded-For` (each client here says it is another).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Clients, connected, upgradedTo } from "../lib/client.mjs";
import { ServeNode, serveConfig } from "../lib/serve-cluster.mjs";
import { startDocBalancer } from "../cluster/doc-balancers.mjs";
import { startRedis } from "../cluster/redis.mjs";
import { waitFor } from "../lib/wait.mjs";
import {
  POLLING,
  UPGRADE,
  WEBSOCKET,
  numberedPublisher,
  receivesEveryNumberFromTo,
  withoutOffset,
} from "../cluster/support.mjs";

/** Clients per transport: enough upgrades that round-robin cannot land them all home. */
const PER_MODE = { [WEBSOCKET.name]: 3, [POLLING.name]: 3, [UPGRADE.name]: 8 };
const PUBLISH_EVERY_MS = 10;
/** Events published after the last client connected and upgraded. */
const AFTER_CONNECTED = 20;

const BALANCERS = [
  { title: "haproxy: round-robin", sticky: false, opts: () => ({}) },
  { title: "nginx: round-robin", sticky: false, opts: () => ({}) },
  { title: "haproxy: sticky cookie", sticky: true, opts: () => ({ withCredentials: true }) },
  {
    title: "nginx: sticky ip_hash",
    sticky: true,
    // ip_hash reads the first three octets of the address.
    opts: (i) => ({ extraHeaders: { "x-forwarded-for": `10.1.${i}.7` } }),
  },
];

let redis;
const nodes = [];
before(async () => {
  redis = await startRedis();
  for (let i = 1; i <= 3; i++) {
    const name = `sb-${i}`;
    const node = new ServeNode({ name, config: serveConfig({ name, redisUrl: redis.url }) });
    nodes.push(node);
    await node.start();
  }
});
after(async () => {
  try {
    for (const node of nodes) await node.stop();
  } finally {
    await redis?.close();
  }
});

/** A metric summed over the nodes. */
async function total(name) {
  let sum = 0;
  for (const node of nodes) sum += (await node.metrics()).get(name) ?? 0;
  return sum;
}

/** Open Engine.IO connections per node. */
async function connectionsPerNode() {
  const counts = [];
  for (const node of nodes) {
    const m = await node.metrics();
    counts.push(
      (m.get('switchboard_connections{transport="polling"}') ?? 0) +
        (m.get('switchboard_connections{transport="websocket"}') ?? 0),
    );
  }
  return counts;
}

for (const balancer of BALANCERS) {
  describe(`docs/load-balancers.md: ${balancer.title}`, () => {
    let lb;
    const clients = new Clients();
    before(async () => {
      lb = await startDocBalancer(
        balancer.title,
        nodes.map((n) => n.port),
      );
    });
    after(async () => {
      clients.closeAll();
      await lb?.stop();
    });

    test("clients of every transport end on it and get every event once, in order", async () => {
      const relayedBefore = await total("switchboard_upgrades_relayed_total");
      const openBefore = await connectionsPerNode();
      const publishing = numberedPublisher((n) => nodes[0].emit("seq", [n]), PUBLISH_EVERY_MS);

      const problems = [];
      const members = [];
      for (const mode of [WEBSOCKET, POLLING, UPGRADE]) {
        for (let k = 0; k < PER_MODE[mode.name]; k++) {
          const i = members.length;
          const socket = clients.open(lb.url, mode, balancer.opts(i));
          // `from`: the first number whose publish began after this client connected;
          // it must receive that one and every later one.
          const member = { mode, socket, seen: [], upgraded: null, from: null };
          socket.on("connect", () => {
            member.from ??= publishing.started;
          });
          socket.on("connect_error", (err) => problems.push(`client ${i}: connect_error ${err.message}`));
          socket.on("disconnect", (reason) => problems.push(`client ${i}: disconnect ${reason}`));
          socket.on("seq", (...args) => member.seen.push(withoutOffset(args)[0]));
          members.push(member);
          socket.connect();
          if (mode === UPGRADE) {
            // Watched from the start: the upgrade may complete before `connect` resolves.
            member.upgraded = upgradedTo(socket, "websocket", 15_000);
            member.upgraded.catch(() => {});
          }
          await connected(socket);
        }
      }
      const upgrades = await Promise.allSettled(members.filter((m) => m.upgraded).map((m) => m.upgraded));
      // Some events after the last upgrade too.
      const settled = publishing.acked;
      await waitFor(() => publishing.acked >= settled + AFTER_CONNECTED, {
        what: `${AFTER_CONNECTED} more acknowledged publishes`,
      });
      const published = await publishing.stop();

      assert.deepEqual(
        upgrades.filter((u) => u.status === "rejected").map((u) => String(u.reason)),
        [],
        "every upgrading client upgraded",
      );
      for (const [i, m] of members.entries()) {
        assert.equal(m.socket.io.engine.transport.name, m.mode.final, `client ${i} (${m.mode.name})`);
      }
      const last = published - 1;
      for (const [i, m] of members.entries()) {
        await receivesEveryNumberFromTo(() => m.seen, m.from, last, `client ${i} (${m.mode.name})`);
      }
      assert.deepEqual(problems, [], "no connect error or disconnect");

      const relayed = (await total("switchboard_upgrades_relayed_total")) - relayedBefore;
      if (balancer.sticky) {
        assert.equal(relayed, 0, "a sticky balancer sends each upgrade to its session's node");
        const gained = (await connectionsPerNode()).filter((n, i) => n > openBefore[i]).length;
        assert.ok(gained >= 2, "the sticky balancer spreads the clients over the nodes");
      } else {
        assert.ok(relayed > 0, "round-robin sent upgrades to other nodes, which relayed them");
        console.log(`  ${relayed} of ${PER_MODE[UPGRADE.name]} upgrades relayed`);
      }
    });
  });
}
