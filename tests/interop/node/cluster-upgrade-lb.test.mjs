// WebSocket upgrades behind a plain round-robin load balancer. Official clients start on
// long-polling (their default) behind HAProxy in front of three Switchboard nodes, each
// HTTP request going to the next node; the WebSocket that upgrades a client usually
// lands on a node that does not own its session, which relays it to the owner (the
// nodes' `upgrades-relayed` must grow). Every client must end on WebSocket, and every
// numbered event broadcast after it connected, throughout the upgrades, must arrive
// exactly once and in order.
//
// Before the relay, a client whose WebSocket reached another node got 400 and stayed on
// polling for good: with three nodes, two clients in three.
//
// And the drain of a relaying node: once the owner answered the client's probe, the
// official client pauses polling and waits to send its `upgrade` packet on the relayed
// WebSocket; a relay ended right then left it paused, hearing nothing, until its ping
// timeout (seen in the rolling restart, about once in 100 loaded runs). The test below
// holds a client exactly there with a slow link, drains the relaying node, checks that
// the drain waits (the node refuses new sessions but does not exit while the upgrade is
// held), then lets the link go: the client completes its upgrade and then reconnects.
//
// Expected to FAIL against an all-Node cluster (CLUSTER_SWITCHBOARD_CMD=node
// .../node-server.mjs): Node.js Socket.IO needs sticky sessions behind this balancer.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { call, connected, once, upgradedTo } from "../lib/client.mjs";
import { startFlapProxy } from "../cluster/flap-proxy.mjs";
import { waitFor } from "../lib/wait.mjs";
import {
  RECONNECT,
  UPGRADE,
  WEBSOCKET,
  connectTo,
  first,
  numberedPublisher,
  receivesEveryNumberFromTo,
  useCluster,
  withoutOffset,
} from "../cluster/support.mjs";

/** Clients behind the balancer: with three nodes, chance alone upgrades one in three. */
const CLIENTS = 12;
/** Events broadcast while the clients connect and upgrade, one every PUBLISH_EVERY_MS. */
const PUBLISH_EVERY_MS = 5;
/** How long a client may take to upgrade (a safety net, not a speed claim). */
const UPGRADE_WAIT_MS = 15_000;
/** Events published after the last upgrade, all over WebSocket. */
const AFTER_UPGRADES = 20;

/**
 * WebSocket upgrades the Switchboard nodes relayed to their session's owner so far
 * (the fixture's `upgrades-relayed`, summed), asked over a WebSocket of its own on each.
 */
async function relayedUpgrades(ctx) {
  let sum = 0;
  for (const node of ctx.cluster.switchboard) {
    const socket = await connectTo(ctx, node);
    const count = await first(socket, "upgrades-relayed");
    assert.equal(typeof count, "number", `upgrades-relayed on ${node.name}: ${JSON.stringify(count)}`);
    sum += count;
    socket.close();
  }
  return sum;
}

/**
 * Whether `node` refuses a new session (503: it is draining). A session it opens
 * instead (the drain has not begun) is closed at once, so none is left for the drain
 * to wait for.
 */
async function refusesHandshakes(node) {
  const url = `${node.url}/socket.io/?EIO=4&transport=polling`;
  const res = await fetch(url);
  const body = await res.text();
  if (res.status === 503) return true;
  if (res.status === 200) {
    const { sid } = JSON.parse(body.slice(body.indexOf("{")));
    await fetch(`${url}&sid=${encodeURIComponent(sid)}`, { method: "POST", body: "1" }).catch(() => {});
  }
  return false;
}

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
      const relayedBefore = await relayedUpgrades(ctx);

      const problems = [];
      const members = [];
      for (let i = 0; i < CLIENTS; i++) {
        const socket = ctx.clients.open(ctx.lb.url, UPGRADE);
        // `from`: the first number whose send began after this client connected; it
        // must receive that one and every later one.
        const member = { socket, seen: [], upgraded: null, seenBeforeUpgrade: 0, from: null };
        socket.on("connect", () => {
          member.from ??= publishing.started;
        });
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
      // Some events after the last upgrade too, all over WebSocket.
      const settled = publishing.acked;
      await waitFor(() => publishing.acked >= settled + AFTER_UPGRADES, {
        what: `${AFTER_UPGRADES} more acknowledged publishes`,
      });
      const published = await publishing.stop();

      const stuck = outcomes
        .map((o, i) => (o.status === "rejected" ? `client ${i} on ${members[i].socket.io.engine?.transport?.name}` : null))
        .filter(Boolean);
      assert.deepEqual(stuck, [], "every client upgraded to WebSocket");
      for (const m of members) assert.equal(m.socket.io.engine.transport.name, "websocket");

      // From its connection on, every client got every number once, in order, up to the last.
      const last = published - 1;
      for (const [i, m] of members.entries()) {
        await receivesEveryNumberFromTo(() => m.seen, m.from, last, `client ${i}`);
      }
      const across = members.filter((m) => m.seenBeforeUpgrade > 0).length;
      // The feature under test: upgrades that reached a node other than their
      // session's owner were relayed to it (with three nodes, round-robin sends most
      // there).
      const relayed = (await relayedUpgrades(ctx)) - relayedBefore;
      console.log(
        `  ${published} events; ${across} of ${CLIENTS} clients received some before their upgrade completed; ` +
          `${relayed} upgrades relayed`,
      );
      assert.deepEqual(problems, [], "no connect error or disconnect");
      assert.ok(relayed > 0, "some upgrades reached another node than their session's, which relayed them");

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
          let exited = false;
          const stopping = relaying.stop("SIGTERM");
          stopping.then(
            () => (exited = true),
            () => (exited = true),
          );
          // The drain has begun once the node refuses new sessions (503); it must not
          // end while the relayed upgrade is held (it did, at once, ending the relay).
          await waitFor(async () => exited || (await refusesHandshakes(relaying)), {
            what: `${relaying.name} to start draining (503 to a handshake)`,
          }).catch((err) => assert.fail(`${err.message}; ${story.join(", ")}`));
          note(exited ? `${relaying.name} exited` : `${relaying.name} draining`);
          assert.equal(exited, false, `the drain ended while the upgrade was held; ${story.join(", ")}`);
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
