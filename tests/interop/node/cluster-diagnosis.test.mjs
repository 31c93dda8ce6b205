// The diagnosis API answers for the whole cluster (issue 12): two `switchboard serve`
// nodes on one real redis-server, for each of the `redis`, `redis-streams` and
// `redis-sharded` adapters.
// A report lives on the node that held the socket; asked on either node,
// `GET /api/v1/disconnects` lists every node's reports, each naming its node, and says
// how many nodes were asked and answered; a live socket's timeline is shown by whichever
// node is asked; a socket on no node is a 404. A Switchboard node that does not answer
// shows as asked but not answered, and a Node.js Socket.IO server sharing the cluster
// (the official adapter) is neither asked nor waited for, nor disturbed.
//
// The nodes' `cluster.request_timeout` is far longer than the safety net on every API
// call: an answer that waited for a node that never answers would fail the test rather
// than pass slowly. Waits are bounded safety nets, never assertions on speed.

import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { ClusterNode } from "../cluster/cluster.mjs";
import { startRedis } from "../cluster/redis.mjs";
import { Clients, TRANSPORT_MODES, once } from "../lib/client.mjs";
import { API_KEY, ServeNode, connectClient, serveConfig } from "../lib/serve-cluster.mjs";
import { freeze, waitFor } from "../lib/wait.mjs";

const [WEBSOCKET, POLLING] = TRANSPORT_MODES;

/** `cluster.request_timeout` of the two nodes: longer than any safety net below. */
const LONG_TIMEOUT = "60s";
/** `cluster.request_timeout` of the node that asks while another is frozen. */
const SHORT_TIMEOUT_MS = 3_000;
/** Safety net on one API call. */
const CALL_MS = 15_000;
/** A socket id no node holds (20 base64url characters, as real ids are). */
const NOBODY = "AAAAAAAAAAAAAAAAAAAA";

/** `/` with every room open, so the API can make a socket join one. */
const ROOT = `
[[namespaces]]
name = "/"
[namespaces.rooms]
allow = ["*"]
`;

/** A node of the cluster, not started. */
function serveNode(name, adapter, redisUrl, requestTimeout = LONG_TIMEOUT) {
  return new ServeNode({
    name,
    config: serveConfig({ name, adapter, redisUrl, cluster: { request_timeout: requestTimeout }, extra: ROOT }),
  });
}

/** `GET path` on `node`'s API: `{ status, body }`; fails the test past `CALL_MS`. */
async function get(node, path) {
  const res = await fetch(`${node.url}${path}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
    signal: AbortSignal.timeout(CALL_MS),
  });
  return { status: res.status, body: await res.json() };
}

/** The timeline of socket `id` of `/`, asked on `node`. */
function timeline(node, id, nsp = "/") {
  return get(node, `/api/v1/namespaces/${encodeURIComponent(nsp)}/sockets/${id}/timeline`);
}

/** Waits until `node` itself holds the disconnect report of `sid`. */
function reported(node, sid) {
  return waitFor(
    async () => {
      const res = await get(node, `/api/v1/disconnects?socket=${sid}`);
      return res.body.disconnects?.find((r) => r.socket_id === sid && r.node === node.name);
    },
    { what: `${node.name} to hold the report of ${sid}` },
  );
}

for (const adapter of ["redis", "redis-streams", "redis-sharded"]) {
  describe(`diagnosis API across a cluster (${adapter})`, () => {
    const clients = new Clients();
    let redis;
    let a;
    let b;

    before(async () => {
      redis = await startRedis();
      a = serveNode("sb-a", adapter, redis.url);
      b = serveNode("sb-b", adapter, redis.url);
      await a.start();
      await b.start();
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      clients.closeAll();
      try {
        await a?.stop();
        await b?.stop();
      } finally {
        await redis?.close();
      }
    });

    it("a disconnect on node B is listed when node A is asked, naming B, both nodes answering", async () => {
      const socket = await connectClient(clients, b.url, WEBSOCKET);
      const sid = socket.id;
      socket.disconnect();
      const atB = await reported(b, sid);
      const res = await get(a, `/api/v1/disconnects?socket=${sid}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body.nodes, { asked: 2, answered: 2 });
      assert.equal(res.body.disconnects.length, 1, JSON.stringify(res.body));
      const report = res.body.disconnects[0];
      assert.equal(report.node, "sb-b");
      assert.equal(report.socket_id, sid);
      assert.equal(report.reason, "client namespace disconnect");
      assert.equal(report.category, "client");
      assert.deepEqual(report, atB, "the report as B shows it");
    });

    it("each node lists every node's reports, newest first, each with the node that holds it", async () => {
      const onB = await connectClient(clients, b.url, POLLING);
      const onA = await connectClient(clients, a.url, WEBSOCKET);
      const [first, second] = [onB.id, onA.id];
      onB.disconnect();
      await reported(b, first);
      onA.disconnect();
      await reported(a, second);
      for (const asked of [a, b]) {
        const res = await get(asked, "/api/v1/disconnects?limit=1000");
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.nodes, { asked: 2, answered: 2 }, asked.name);
        const list = res.body.disconnects;
        for (let i = 1; i < list.length; i++) {
          assert.ok(list[i - 1].at >= list[i].at, `not newest first: ${JSON.stringify(list.map((r) => r.at))}`);
        }
        const ours = list.filter((r) => r.socket_id === first || r.socket_id === second);
        assert.deepEqual(
          ours.map((r) => [r.socket_id, r.node]),
          [
            [second, "sb-a"],
            [first, "sb-b"],
          ],
          `asked on ${asked.name}`,
        );
      }
      // The limit cuts the merged list: the newest report of the cluster only.
      const one = await get(b, "/api/v1/disconnects?limit=1");
      assert.deepEqual(
        one.body.disconnects.map((r) => [r.socket_id, r.node]),
        [[second, "sb-a"]],
      );
    });

    it("the timeline of a live socket on B, asked on A, is B's, with its steps", async () => {
      const socket = await connectClient(clients, b.url, WEBSOCKET);
      const sid = socket.id;
      const join = await a.api("POST", "/api/v1/sockets/join", { socket_ids: [sid], join: ["ops:room"] });
      assert.deepEqual(join, { status: 200, body: { affected: 1 } });
      const atB = await waitFor(
        async () => {
          const res = await timeline(b, sid);
          return res.body.breadcrumbs?.some((c) => c.step === "joined") && res;
        },
        { what: "B's timeline to show the join" },
      );
      assert.equal(atB.status, 200);
      const res = await timeline(a, sid);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, atB.body, "the timeline as B shows it");
      assert.equal(res.body.node, "sb-b");
      assert.equal(res.body.socket_id, sid);
      // In time order; steps of the same millisecond (opening and connecting often
      // are) in the engine's order, which is not this test's concern.
      const crumbs = res.body.breadcrumbs;
      for (let i = 1; i < crumbs.length; i++) {
        assert.ok(crumbs[i - 1].at <= crumbs[i].at, `steps out of order: ${JSON.stringify(crumbs)}`);
      }
      const byStep = (x, y) => x.step.localeCompare(y.step);
      assert.deepEqual(
        crumbs.map(({ at, ...rest }) => rest).sort(byStep),
        [
          { step: "opened", transport: "websocket" },
          { step: "connected", recovered: false },
          { step: "joined", room: "ops:room" },
        ].sort(byStep),
      );
      // Once it left, no node has a live timeline of it.
      socket.disconnect();
      await reported(b, sid);
      const gone = await timeline(a, sid);
      assert.equal(gone.status, 404, JSON.stringify(gone.body));
      assert.equal(gone.body.code, "unknown_socket");
    });

    it("a socket on no node is a 404 from either node; so is a namespace no node has", async () => {
      for (const node of [a, b]) {
        const res = await timeline(node, NOBODY);
        assert.equal(res.status, 404, JSON.stringify(res.body));
        assert.equal(res.body.code, "unknown_socket");
        const nowhere = await timeline(node, NOBODY, "/nowhere");
        assert.equal(nowhere.status, 404, JSON.stringify(nowhere.body));
        assert.equal(nowhere.body.code, "unknown_namespace");
      }
    });

    it("a Switchboard node that does not answer shows as asked and not answered", async () => {
      const c = serveNode("sb-c", adapter, redis.url, `${SHORT_TIMEOUT_MS}ms`);
      await c.start();
      const frozen = b.server.fixture.child;
      try {
        await freeze(frozen.pid);
        const res = await get(c, "/api/v1/disconnects");
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.nodes, { asked: 3, answered: 2 }, "B is asked and silent");
        assert.ok(
          res.body.disconnects.every((r) => r.node !== "sb-b"),
          "nothing of B's is listed",
        );
        // Not finding a socket while a node stays silent is not a 404: it may be there.
        const unsure = await timeline(c, NOBODY);
        assert.equal(unsure.status, 503, JSON.stringify(unsure.body));
        assert.equal(unsure.body.code, "cluster_unavailable");
      } finally {
        frozen.kill("SIGCONT");
        await c.stop();
      }
    });

    describe("with a Node.js Socket.IO server in the cluster", () => {
      let nodeServer;

      before(async () => {
        nodeServer = new ClusterNode({ kind: "node", name: "node-1", adapter, redisUrl: redis.url });
        await nodeServer.start();
      });
      after(async () => {
        await nodeServer?.stop();
      });

      it("the Switchboard nodes answer without waiting for it, and it keeps serving the cluster", async () => {
        const client = await connectClient(clients, nodeServer.url, WEBSOCKET);
        const onB = await connectClient(clients, b.url, WEBSOCKET);
        const sid = onB.id;
        onB.disconnect();
        await reported(b, sid);
        // A request timeout of 60 s and a safety net of 15 s: waiting for the Node.js
        // server (which never answers) would fail here.
        const res = await get(a, `/api/v1/disconnects?socket=${sid}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.nodes, { asked: 2, answered: 2 }, "the Node.js server is not asked");
        assert.deepEqual(
          res.body.disconnects.map((r) => [r.socket_id, r.node]),
          [[sid, "sb-b"]],
        );
        const notHere = await timeline(a, NOBODY);
        assert.equal(notHere.status, 404, JSON.stringify(notHere.body));
        // The Node.js server still takes part: an event published on A reaches its client.
        const got = once(client, "after-question");
        await a.emit("after-question", [{ n: 1 }]);
        const [data] = await got;
        assert.deepEqual(data, { n: 1 });
        assert.ok(nodeServer.running, "the Node.js server is still running");
      });
    });
  });
}
