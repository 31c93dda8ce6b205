// No sticky sessions: long-polling clients behind a plain round-robin load balancer
// (HAProxy, one HTTP request to the next node each time) work as if they were alone with
// one server. Every GET and POST of a session lands on any of three Switchboard nodes,
// and the node that does not own the session serves it through its owner.
//
// Expected to FAIL against an all-Node cluster (CLUSTER_SWITCHBOARD_CMD=node
// .../node-server.mjs): Node.js Socket.IO needs sticky sessions as soon as
// long-polling is on (a request for a session another process owns gets 400 "Session
// ID unknown"), which is the pain this behaviour removes.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Clients, call, connected, once, until } from "../lib/client.mjs";
import { startCluster } from "../cluster/cluster.mjs";
import { startHaproxy } from "../cluster/haproxy.mjs";
import { startRedis } from "../cluster/redis.mjs";
import { POLLING, fresh, recordData, withoutOffset } from "../cluster/support.mjs";

/** Clients behind the balancer, and events each of them sends each way. */
const CLIENTS = 4;
const EVENTS = 50;

for (const adapter of ["redis-streams", "redis"]) {
  describe(`polling-only clients behind round-robin HAProxy (adapter ${adapter})`, () => {
    let redis;
    let cluster;
    let lb;
    const clients = new Clients();
    before(async () => {
      redis = await startRedis();
      cluster = await startCluster({ adapter, redisUrl: redis.url, switchboard: 3 });
      lb = await startHaproxy(cluster.switchboard.map((n) => n.port));
    });
    after(async () => {
      clients.closeAll();
      try {
        await lb?.stop();
        await cluster?.stop();
      } finally {
        await redis?.close();
      }
    });

    test(`${CLIENTS} clients exchange ${EVENTS} events each both ways with acks, without an error`, async () => {
      const room = fresh("lb");
      const before = await lb.stats();
      const problems = [];
      const sockets = [];
      for (let i = 0; i < CLIENTS; i++) {
        const socket = clients.open(lb.url, POLLING);
        socket.on("connect_error", (err) => problems.push(`client ${i}: connect_error ${err.message}`));
        socket.on("disconnect", (reason) => problems.push(`client ${i}: disconnect ${reason}`));
        socket.connect();
        await connected(socket);
        sockets.push(socket);
      }
      for (const s of sockets) assert.deepEqual(await call(s, "join", room), [true]);
      const seen = sockets.map((s) => recordData(s, "lb"));

      // Client -> server with acks (each broadcast acked), server -> every client.
      await Promise.all(
        sockets.map(async (s, from) => {
          for (let k = 0; k < EVENTS; k++) {
            assert.deepEqual(await call(s, "broadcast", room, "lb", { from, k }), [true]);
          }
        }),
      );
      for (const s of seen) await until(s, CLIENTS * EVENTS);
      for (const [i, s] of seen.entries()) {
        for (let from = 0; from < CLIENTS; from++) {
          const ks = s.filter(([d]) => d.from === from).map(([d]) => d.k);
          assert.deepEqual(ks, [...Array(EVENTS).keys()], `client ${i}: events of client ${from}`);
        }
      }

      // Server -> client with acks: the node asks, the client's ack comes back in a POST
      // that the balancer sends to whichever node is next.
      await Promise.all(
        sockets.map(async (s, i) => {
          s.on("question", (...args) => args.pop()({ answer: args[0].k }));
          for (let k = 0; k < EVENTS; k++) {
            const result = once(s, "request-ack-result");
            s.emit("request-ack", "question", { k });
            assert.deepEqual(withoutOffset(await result), [[{ answer: k }]], `client ${i}, request ${k}`);
          }
        }),
      );

      assert.deepEqual(problems, [], "no connect_error and no disconnect");
      for (const s of sockets) assert.equal(s.io.engine.transport.name, "polling");
      // The balancer really spread the requests: every node served a good share.
      const now = await lb.stats();
      for (const node of cluster.switchboard) {
        const served = now.get(node.port).requests - before.get(node.port).requests;
        assert.ok(served >= EVENTS, `${node.name} served only ${served} requests`);
      }
    });

    test("a request for a session no node holds gets 400 Session ID unknown from every node", async () => {
      // A live node's tag with a made-up rest, and a tag no node has.
      const open = await fetch(`${lb.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(open.status, 200);
      const sid = JSON.parse((await open.text()).slice(1)).sid;
      const liveTag = sid.slice(0, 6) + "x".repeat(sid.length - 6);
      const deadTag = "zzzzzz" + sid.slice(6);
      for (const bad of [liveTag, deadTag]) {
        for (const node of cluster.switchboard) {
          for (const method of ["GET", "POST"]) {
            const res = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling&sid=${bad}`, {
              method,
              body: method === "POST" ? "40" : undefined,
              headers: method === "POST" ? { "content-type": "text/plain;charset=UTF-8" } : {},
            });
            assert.equal(res.status, 400, `${method} ${bad} on ${node.name}`);
            assert.deepEqual(await res.json(), { code: 1, message: "Session ID unknown" });
          }
        }
      }
    });
  });
}
