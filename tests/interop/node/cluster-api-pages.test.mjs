// The HTTP API's socket list, a page at a time, across a cluster: two `switchboard
// serve` nodes on one real redis-server, for each of the `redis`, `redis-streams` and
// `redis-sharded` adapters. `GET /api/v1/namespaces/{ns}/sockets?limit=&after=` pages
// through every socket of both nodes, each exactly once and in id order, and each node
// answers with its own page only: the asking node's request carries the page, so what
// crosses Redis for one page is a page of sockets from each node, not all of them (an
// answer of a large node's every socket, handshakes and all, is larger than a node reads
// from Redis, and the listing failed).
//
// Counts (`GET /namespaces`), room sizes and the actions' selection (`POST
// /sockets/join`) ask the other nodes for each socket's id and rooms only, no handshake.
//
// What crosses Redis is measured with Redis' own counter of bytes it received
// (`INFO stats`, `total_net_input_bytes`) around one request. The clients carry a 4 KB
// header each, so a node answering with all 20 of its sockets in full sends over 80 KB,
// one answering with a page of 5, about 20 KB, and with ids and rooms, a few KB.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { startRedis } from "../cluster/redis.mjs";
import { Clients, TRANSPORT_MODES } from "../lib/client.mjs";
import { API_KEY, ServeNode, connectClient, serveConfig } from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";

const [WEBSOCKET] = TRANSPORT_MODES;

/** Clients on each node. */
const PER_NODE = 20;
/** The page size asked for. */
const LIMIT = 4;
/** The header each client sends, kept in its handshake (up to 8 KiB are). */
const PAD = "x".repeat(4000);
/** Safety net on one API call. */
const CALL_MS = 15_000;

/** `GET path` on `node`'s API: `{ status, body }`. */
async function get(node, path) {
  const res = await fetch(`${node.url}${path}`, {
    headers: { authorization: `Bearer ${API_KEY}` },
    signal: AbortSignal.timeout(CALL_MS),
  });
  return { status: res.status, body: await res.json() };
}

/** `POST path` with `body` on `node`'s API: `{ status, body }`. */
async function post(node, path, body) {
  const res = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(CALL_MS),
  });
  return { status: res.status, body: await res.json() };
}

/** The bytes Redis received while `call` ran, and what `call` resolved with. */
async function measured(redis, call) {
  const before = await receivedBytes(redis);
  const result = await call();
  return { received: (await receivedBytes(redis)) - before, result };
}

/** Redis' count of the bytes it has received from its clients. */
async function receivedBytes(redis) {
  const info = await redis.info("stats");
  const line = info.split("\r\n").find((l) => l.startsWith("total_net_input_bytes:"));
  return Number(line.split(":")[1]);
}

for (const adapter of ["redis", "redis-streams", "redis-sharded"]) {
  describe(`the API's socket list across a cluster, a page at a time (${adapter})`, () => {
    const clients = new Clients();
    let redis;
    let stats;
    let a;
    let b;
    const ids = [];

    before(async () => {
      redis = await startRedis();
      stats = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
      await stats.connect();
      const node = (name) => new ServeNode({ name, config: serveConfig({ name, adapter, redisUrl: redis.url }) });
      a = node("sb-a");
      b = node("sb-b");
      await a.start();
      await b.start();
      for (const n of [a, b]) {
        for (let i = 0; i < PER_NODE; i++) {
          const socket = await connectClient(clients, n.url, WEBSOCKET, { extraHeaders: { "x-pad": PAD } });
          ids.push(socket.id);
        }
      }
      ids.sort();
    });
    after(async () => {
      clients.closeAll();
      stats?.disconnect();
      try {
        await a?.stop();
        await b?.stop();
      } finally {
        await redis?.close();
      }
    });

    it("pages through both nodes' sockets, each once, in id order", async () => {
      const seen = [];
      let after = null;
      for (let pages = 0; pages <= (2 * PER_NODE) / LIMIT; pages++) {
        const query = `limit=${LIMIT}${after ? `&after=${after}` : ""}`;
        const res = await get(a, `/api/v1/namespaces/%2F/sockets?${query}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(res.body.sockets.length <= LIMIT);
        seen.push(...res.body.sockets.map((s) => s.id));
        after = res.body.next;
        if (!after) break;
      }
      assert.equal(after, null, "the last page says so");
      assert.deepEqual(seen, ids);
    });

    it("each node answers with its page, not all its sockets", async () => {
      // The first page: node B's first sockets by id, at most LIMIT + 1 of them.
      const before = await receivedBytes(stats);
      const res = await get(a, `/api/v1/namespaces/%2F/sockets?limit=${LIMIT}`);
      const received = (await receivedBytes(stats)) - before;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(
        res.body.sockets.map((s) => s.id),
        ids.slice(0, LIMIT),
      );
      const pageBytes = (LIMIT + 1) * PAD.length;
      const allBytes = PER_NODE * PAD.length;
      console.log(`# ${adapter}: Redis received ${received} B for one page (a page of B's sockets ≈ ${pageBytes} B, all of them ≈ ${allBytes} B)`);
      assert.ok(received < (pageBytes + allBytes) / 2, `${received} B crossed Redis for one page`);
    });

    it("counts, room sizes and actions ask the other node for ids and rooms only", async () => {
      const allBytes = PER_NODE * PAD.length;
      const counted = await measured(stats, () => get(a, "/api/v1/namespaces"));
      assert.equal(counted.result.status, 200, JSON.stringify(counted.result.body));
      const root = counted.result.body.namespaces.find((n) => n.name === "/");
      assert.equal(root.sockets, 2 * PER_NODE);
      const joined = await measured(stats, () =>
        post(a, "/api/v1/sockets/join", { all: true, join: ["everyone"] }),
      );
      assert.equal(joined.result.status, 200, JSON.stringify(joined.result.body));
      assert.equal(joined.result.body.affected, 2 * PER_NODE);
      // Each node applies the join when it reads it (with redis-streams, from the
      // stream, which a listing asked over pub/sub can overtake): wait until node B
      // has, before measuring the listing.
      await waitFor(async () => (await get(b, "/api/v1/namespaces/%2F/rooms/everyone")).body.size === 2 * PER_NODE, {
        what: "node B to apply the join",
      });
      const room = await measured(stats, () => get(a, "/api/v1/namespaces/%2F/rooms/everyone"));
      assert.equal(room.result.body.size, 2 * PER_NODE, JSON.stringify(room.result.body));
      console.log(
        `# ${adapter}: Redis received ${counted.received} B (count), ${joined.received} B (join), ` +
          `${room.received} B (room) — all of B's sockets in full ≈ ${allBytes} B`,
      );
      for (const [what, m] of [["count", counted], ["join", joined], ["room", room]]) {
        assert.ok(m.received < allBytes / 2, `${what}: ${m.received} B crossed Redis`);
      }
    });
  });
}
