// `socket.handshake.query` across a mixed cluster: one Switchboard node
// (`protocol_fixture cluster`) and one Node.js Socket.IO 4.8 server
// (`cluster/node-server.mjs`) on one real redis-server, once over each Redis adapter
// (`redis` pub/sub, `redis-streams`), each node asked with the contract's `fetch-handshake-queries` (`io.in(id).fetchSockets()`,
// then each socket's `handshake.query`).
//
// Node's Engine.IO decodes the query of the opening request with `new URL(...)
// .searchParams` (`Object.fromEntries`): percent-decoded UTF-8, `+` a space, a `%` not
// followed by two hex digits kept as it is, the last value of a repeated name. A
// Switchboard node must hand its sockets' queries to the cluster decoded the same way,
// so that code written for Node reads `Jürgen`, not `J%C3%BCrgen`.
//
// - An official socket.io-client with `query: { name: "Jürgen", q: "a b&c" }` on each
//   node: both nodes show both sockets' queries decoded.
// - A query the official client cannot send (it re-encodes every value), sent by raw
//   Engine.IO long-polling requests to each node: repeated names, `+`, malformed and
//   non-UTF-8 percent sequences, an encoded `=`, empty names and values. Node's own
//   reading of its socket is the reference; the Switchboard socket must read the same,
//   on both nodes.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectTo, first, useCluster } from "../cluster/support.mjs";

/** What the official client is given; it sends `name=J%C3%BCrgen&q=a%20b%26c`. */
const CLIENT_QUERY = { name: "Jürgen", q: "a b&c" };

/** Raw query parameters only a hand-made request sends; every one is an edge case. */
const RAW_QUERY = [
  "utf=J%C3%BCrgen",
  "plus=a+b",
  "encoded-plus=%2B",
  "x=1",
  "x=2", // repeated: Node keeps the last
  "bad=%zz",
  "half=%4",
  "lone=%",
  "mixed=%41%4g",
  "cut=%E2%82", // a truncated UTF-8 sequence
  "surrogate=%ED%A0%80",
  "k%3Dk=v",
  "flag", // no `=`
  "=empty-name",
  "eq==h",
  "", // an empty pair
].join("&");

/** What Node makes of `RAW_QUERY` (checked against Node's own socket below too). */
const RAW_DECODED = {
  EIO: "4",
  transport: "polling",
  utf: "Jürgen",
  plus: "a b",
  "encoded-plus": "+",
  x: "2",
  bad: "%zz",
  half: "%4",
  lone: "%",
  mixed: "A%4g",
  cut: "\uFFFD",
  surrogate: "\uFFFD\uFFFD\uFFFD",
  "k=k": "v",
  flag: "",
  "": "empty-name",
  eq: "=h",
};

/** `socket.handshake.query` of the socket `id`, as the node of client `asker` sees it. */
async function queryOf(asker, id) {
  const answer = await first(asker, "fetch-handshake-queries", id);
  assert.ok(Array.isArray(answer), `fetch-handshake-queries: ${JSON.stringify(answer)}`);
  assert.equal(answer.length, 1, `one socket ${id}: ${JSON.stringify(answer)}`);
  assert.equal(answer[0].id, id);
  return answer[0].query;
}

/**
 * A Socket.IO socket opened on `node` by raw long-polling requests whose opening one
 * carries `query`: `{ id, close }`.
 */
async function rawSocket(node, query) {
  const base = `${node.url}/socket.io/?EIO=4&transport=polling`;
  const opening = `${base}&${query}`;
  // `fetch` sends the query as it is: none of its characters is one URL parsing escapes.
  assert.equal(new URL(opening).search, `?EIO=4&transport=polling&${query}`);
  const open = await (await fetch(opening)).text();
  assert.match(open, /^0\{/, `handshake on ${node.name}: ${open}`);
  const url = `${base}&sid=${JSON.parse(open.slice(1)).sid}`;
  const post = await fetch(url, { method: "POST", body: "40" });
  assert.equal(post.status, 200, `CONNECT on ${node.name}: ${await post.text()}`);
  const packets = (await (await fetch(url)).text()).split("\x1e");
  const connect = packets.find((p) => p.startsWith("40"));
  assert.ok(connect, `CONNECT answer on ${node.name}: ${JSON.stringify(packets)}`);
  return {
    id: JSON.parse(connect.slice(2)).sid,
    close: () => fetch(url, { method: "POST", body: "1" }).then((r) => r.text()),
  };
}

for (const adapter of ["redis", "redis-streams"]) {
  describe(`handshake queries in a mixed cluster over ${adapter} (1 Switchboard node + 1 Node.js node)`, () => {
    const ctx = useCluster({ adapter, switchboard: 1, node: 1 });
    const nodes = () => [ctx.cluster.switchboard[0], ctx.cluster.node[0]];

    test("an official client's query values are decoded, whichever node holds the socket and whichever asks", async () => {
      const sockets = [];
      for (const node of nodes()) {
        sockets.push({ node, socket: await connectTo(ctx, node, { query: CLIENT_QUERY }) });
      }
      for (const { node, socket } of sockets) {
        for (const { node: asker, socket: asking } of sockets) {
          assert.deepEqual(
            await queryOf(asking, socket.id),
            { ...CLIENT_QUERY, EIO: "4", transport: "websocket" },
            `a socket on ${node.name} as ${asker.name} sees it`,
          );
        }
      }
    });

    test("a hand-made query reads on the Switchboard node's socket exactly as on Node's own", async () => {
      const [sb, nd] = nodes();
      const raw = [await rawSocket(sb, RAW_QUERY), await rawSocket(nd, RAW_QUERY)];
      try {
        const askers = [await connectTo(ctx, sb), await connectTo(ctx, nd)];
        // The reference: Node's reading of the Node.js node's own socket.
        const reference = await queryOf(askers[1], raw[1].id);
        assert.deepEqual(reference, RAW_DECODED, "Node's own decoding (test expectations)");
        for (const [i, asking] of askers.entries()) {
          assert.deepEqual(
            await queryOf(asking, raw[0].id),
            reference,
            `the Switchboard node's socket, as ${nodes()[i].name} sees it`,
          );
          assert.deepEqual(
            await queryOf(asking, raw[1].id),
            reference,
            `the Node.js node's socket, as ${nodes()[i].name} sees it`,
          );
        }
      } finally {
        await Promise.allSettled(raw.map((r) => r.close()));
      }
    });
  });
}
