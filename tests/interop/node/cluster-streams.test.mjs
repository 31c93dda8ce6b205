// A mixed cluster over Redis Streams (`@socket.io/redis-streams-adapter` wire format):
// three Switchboard nodes and one Node.js Socket.IO 4.8 server with the official
// adapter, on a real redis-server, and HAProxy round-robin in front of the Switchboard
// nodes. The cross-node behaviours of every adapter, then connection state recovery
// across nodes: a client whose node crashed, drained, froze, or who merely lost its
// connection comes back through the load balancer on another node with its id, its
// rooms and every event it missed, in order. See cluster/CONTRACT.md.
//
// Against an all-Node cluster (CLUSTER_SWITCHBOARD_CMD=node .../node-server.mjs) the
// recovery tests below marked "fails on Node" fail, by design of Node's adapter:
// - after a SIGKILL: Node saves a session only when the socket disconnects, so a killed
//   node's clients come back with `recovered: false`;
// - a client that had received no event yet has no offset, and Node only tries to
//   restore a session when the client sends both `pid` and `offset`;
// - a frozen node never saves the session of the client that left it.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { barrier, call, connected, once, until } from "../lib/client.mjs";
import { freeze, waitFor } from "../lib/wait.mjs";
import { crossNodeTests } from "../cluster/scenarios.mjs";
import { setTimeout as sleep } from "node:timers/promises";
import {
  POLLING,
  RECONNECT,
  UPGRADE,
  WEBSOCKET,
  connectTo,
  first,
  fresh,
  frozen,
  recordData,
  sorted,
  threadStates,
  untilSessionSaved,
  useCluster,
  withoutOffset,
} from "../cluster/support.mjs";

const ctx = useCluster({ adapter: "redis-streams", switchboard: 3, node: 1, haproxy: true });

describe("cluster over Redis Streams (3 Switchboard nodes + 1 Node.js node)", () => {
  crossNodeTests(ctx);
});

/**
 * A websocket client through the load balancer that does not reconnect by itself, so
 * the test decides when it comes back (`socket.connect()` keeps its `pid` and offset);
 * returns it with the Switchboard node it landed on.
 */
async function viaBalancer() {
  const socket = await connectTo(ctx, ctx.lb.url);
  const node = ctx.cluster.byName(await first(socket, "whoami"));
  assert.equal(node.kind, "switchboard", "the balancer only knows Switchboard nodes");
  return { socket, node };
}

/**
 * Like `viaBalancer`, but the client asks the node not to greet it (`auth: { quiet:
 * true }`), so it receives no event and holds no recovery offset. `events` records
 * every event it receives.
 */
async function quietViaBalancer() {
  const socket = ctx.clients.open(ctx.lb.url, WEBSOCKET, { auth: { quiet: true } });
  const events = [];
  socket.onAny((event) => events.push(event));
  socket.connect();
  await connected(socket);
  const node = ctx.cluster.byName(await first(socket, "whoami"));
  return { socket, node, events };
}

/**
 * Closes the client's connection (a network flap; its node stays up) and waits until
 * the cluster no longer lists the socket in `room`, so its node has noticed.
 */
async function dropAndWaitUntilNoticed(socket, watcher, room) {
  const id = socket.id;
  const gone = once(socket, "disconnect");
  socket.io.engine.close();
  await gone;
  await waitFor(async () => !(await first(watcher, "fetch-sockets", room)).some((s) => s.id === id), {
    what: `the cluster to notice that ${id} left`,
  });
}

/** A Switchboard node other than `node`, for a publisher that stays up. */
const another = (node) => ctx.cluster.switchboard.find((n) => n !== node);

/** Reconnects `socket` (through the balancer) and resolves once it is connected. */
async function reconnect(socket) {
  socket.connect();
  await connected(socket);
}

/**
 * Reconnects `socket` through the balancer with `node` out of its rotation, so it comes
 * back on another node whatever the rotation's position: HAProxy's round-robin does not
 * promise the next request a different server (after servers went down and up in earlier
 * tests, the same one was picked twice in a row in about one run of four).
 */
async function reconnectElsewhere(socket, node) {
  await ctx.lb.setState(node.port, "maint");
  try {
    await reconnect(socket);
  } finally {
    await ctx.lb.setState(node.port, "ready");
  }
}

/** Asserts what a recovered socket must have kept. */
async function assertRecovered(socket, { id, rooms, from }) {
  assert.equal(socket.recovered, true, "socket.recovered after reconnecting");
  assert.equal(socket.id, id, "a recovered socket keeps its id");
  const kept = sorted(await first(socket, "rooms"));
  assert.deepEqual(kept, sorted(rooms), "a recovered socket keeps its rooms");
  const now = await first(socket, "whoami");
  assert.notEqual(now, from.name, "the client came back on another node");
}

/** Adds a timestamped line to a rolling-restart member's story. */
function note(member, what) {
  member.log.push(`${(performance.now() / 1000).toFixed(3)} ${what}`);
}

describe("rolling restart (Redis Streams)", () => {
  test("draining and restarting every Switchboard node in turn loses no event and recovers every client", async () => {
    const room = fresh("rolling");
    // The publisher is on the Node.js node, which the rolling restart leaves alone.
    const publisher = await connectTo(ctx, ctx.cluster.node[0]);
    const members = [];
    for (const mode of [WEBSOCKET, POLLING, UPGRADE, WEBSOCKET, POLLING, UPGRADE]) {
      const socket = ctx.clients.open(ctx.lb.url, mode, RECONNECT);
      const member = { socket, mode: mode.name, seen: [], connects: 0, unrecovered: 0, log: [] };
      socket.on("roll", (...args) => member.seen.push(withoutOffset(args)[0].n));
      socket.on("connect", () => {
        if (++member.connects > 1 && !socket.recovered) member.unrecovered++;
        note(member, `connect (recovered ${socket.recovered})`);
        socket.io.engine.once("upgrade", (t) => note(member, `upgraded to ${t.name}`));
      });
      socket.on("disconnect", (reason) => note(member, `disconnect (${reason})`));
      socket.connect();
      await connected(socket);
      assert.deepEqual(await call(socket, "join", room), [true]);
      members.push(member);
    }

    // Node's `broadcast` acks at once, so its answer says nothing; a publish that is
    // not answered at all fails the test (`call` rejects, and so does `pump`).
    let next = 0;
    let running = true;
    const pump = (async () => {
      while (running) {
        await call(publisher, "broadcast", room, "roll", { n: next++ });
        await sleep(20);
      }
    })();
    try {
      for (const node of ctx.cluster.switchboard) {
        for (const m of members) note(m, `draining ${node.name}`);
        await node.stop("SIGTERM"); // throws unless it drains and exits 0
        await ctx.lb.waitUntil(node.port, false);
        await node.restart();
        await ctx.lb.waitUntil(node.port, true);
        await waitFor(() => members.every((m) => m.socket.connected), {
          what: "every client to be connected again",
        });
      }
    } finally {
      running = false;
      await pump;
    }
    const all = [...Array(next).keys()];
    await waitFor(() => members.every((m) => m.seen.length >= next), {
      what: "every client to receive every event",
    }).catch(() => {});
    // Late copies (a duplicate still on its way) arrive before a round trip's answer.
    for (const m of members) await barrier(m.socket);
    for (const m of members) {
      // What a failure needs to be explained: this client's story against the drains.
      const story = `; transport ${m.socket.io.engine?.transport?.name}, received ${m.seen.length} of ${next}; ${m.log.join(", ")}`;
      assert.equal(m.unrecovered, 0, `${m.mode} client: every reconnect recovered${story}`);
      assert.ok(m.connects > 1, `${m.mode} client: the rolling restart moved it${story}`);
      assert.deepEqual(m.seen, all, `${m.mode} client: every event once, in order${story}`);
    }
  });
});

describe("durability (Redis Streams)", () => {
  test("a broadcast is acknowledged only once Redis holds it, and reaches the other nodes after Redis was frozen (fails on Node)", async () => {
    const room = fresh("durable");
    const [publishing, receiving] = ctx.cluster.switchboard;
    const receiver = await connectTo(ctx, receiving);
    await call(receiver, "join", room);
    const seen = recordData(receiver, "dur");
    const publisher = await connectTo(ctx, publishing);
    const pid = ctx.redis.child.pid;
    await freeze(pid);
    let acked = false;
    let ack;
    try {
      ack = new Promise((resolve) => {
        publisher.emit("broadcast", room, "dur", { n: 1 }, (...args) => {
          acked = true;
          resolve(args);
        });
      });
      // The node answers meanwhile (handlers run in order, so an ack sent at once
      // would have come first), but does not acknowledge what Redis does not hold.
      assert.deepEqual(await call(publisher, "message-with-ack", "alive"), ["alive"]);
      assert.equal(acked, false, "acknowledged before Redis had the broadcast");
    } finally {
      process.kill(pid, "SIGCONT");
    }
    assert.deepEqual(await ack, [true]);
    await until(seen, 1);
    await barrier(receiver);
    assert.deepEqual(seen, [[{ n: 1 }]]);
  });
});

describe("connection state recovery across nodes (Redis Streams)", () => {
  test("a client whose node was SIGKILLed resumes on another node with every missed event (fails on Node)", async () => {
    const room = fresh("crash");
    const { socket, node } = await viaBalancer();
    const publisher = await connectTo(ctx, another(node));
    await call(socket, "join", room);
    const seen = recordData(socket, "rec");
    await call(publisher, "broadcast", room, "rec", { i: 0 });
    await until(seen, 1); // the client now holds an offset
    const id = socket.id;
    // A node killed before its writer saved the join loses it (see untilSessionSaved).
    await untilSessionSaved(ctx, socket, [room]);

    const gone = once(socket, "disconnect");
    await node.kill();
    await gone;
    try {
      for (let i = 1; i <= 5; i++) {
        assert.deepEqual(await call(publisher, "broadcast", room, "rec", { i }), [true]);
      }
      await ctx.lb.waitUntil(node.port, false);
      await reconnect(socket);
      await assertRecovered(socket, { id, rooms: [id, room], from: node });
      await until(seen, 6);
      await call(publisher, "broadcast", room, "rec", { i: 6 });
      await until(seen, 7);
      await barrier(socket);
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6].map((i) => [{ i }]), "every event once, in order");
    } finally {
      await node.restart();
      await ctx.lb.waitUntil(node.port, true);
    }
  });

  test("a client drained by SIGTERM resumes on another node with every missed event", async () => {
    const room = fresh("drain");
    const { socket, node } = await viaBalancer();
    const publisher = await connectTo(ctx, another(node));
    await call(socket, "join", room);
    const seen = recordData(socket, "rec");
    await call(publisher, "broadcast", room, "rec", { i: 0 });
    await until(seen, 1);
    const id = socket.id;

    const gone = once(socket, "disconnect");
    await node.stop("SIGTERM"); // throws unless the node drains and exits 0
    try {
      const [reason] = await gone;
      assert.equal(reason, "transport close", "a drain closes the transport; the session stays recoverable");
      for (let i = 1; i <= 5; i++) await call(publisher, "broadcast", room, "rec", { i });
      await ctx.lb.waitUntil(node.port, false);
      await reconnect(socket);
      await assertRecovered(socket, { id, rooms: [id, room], from: node });
      await until(seen, 6);
      await barrier(socket);
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5].map((i) => [{ i }]), "every event once, in order");
    } finally {
      await node.restart();
      await ctx.lb.waitUntil(node.port, true);
    }
  });

  test("a client that had received no event (no offset) is recovered on another node (fails on Node)", async () => {
    const room = fresh("no-offset");
    const watcher = await connectTo(ctx, ctx.cluster.node[0]);
    const { socket, node, events } = await quietViaBalancer();
    await call(socket, "join", room);
    const id = socket.id;
    assert.deepEqual(events, [], "no event reached the client, so it holds no offset");
    // Saved before the flap: a reconnect that beats the node's writer finds no session.
    await untilSessionSaved(ctx, socket, [room]);
    await dropAndWaitUntilNoticed(socket, watcher, room);
    await reconnectElsewhere(socket, node);
    await assertRecovered(socket, { id, rooms: [id, room], from: node });
    const seen = recordData(socket, "after");
    await call(watcher, "broadcast", room, "after", { n: 1 });
    await until(seen, 1);
    await barrier(socket);
    assert.deepEqual(seen, [[{ n: 1 }]]);
  });

  test("events missed by a client that had received none are replayed on another node (fails on Node)", async () => {
    const room = fresh("no-offset-missed");
    const publisher = await connectTo(ctx, ctx.cluster.node[0]);
    const { socket, node, events } = await quietViaBalancer();
    await call(socket, "join", room);
    const id = socket.id;
    const seen = recordData(socket, "missed");
    await untilSessionSaved(ctx, socket, [room]);
    await dropAndWaitUntilNoticed(socket, publisher, room);
    assert.deepEqual(events, [], "no event reached the client, so it holds no offset");
    for (let i = 0; i < 3; i++) await call(publisher, "broadcast", room, "missed", { i });
    await reconnectElsewhere(socket, node);
    await assertRecovered(socket, { id, rooms: [id, room], from: node });
    await until(seen, 3);
    await barrier(socket);
    assert.deepEqual(seen, [0, 1, 2].map((i) => [{ i }]));
  });

  test("a room joined late is replayed only from the join, whatever offset the client claims; Node.js resumes the same session (fails on Node)", async () => {
    const [early, late] = [fresh("early"), fresh("late")];
    const { socket, node } = await viaBalancer();
    const publisher = await connectTo(ctx, ctx.cluster.node[0]);
    await call(socket, "join", early);
    const seen = recordData(socket, "rec");
    await call(publisher, "broadcast", early, "rec", { i: 0 });
    await until(seen, 1);
    const claimed = socket._lastOffset; // from before the late join
    await call(publisher, "broadcast", late, "rec", { secret: "before the join" });
    // Read after the secret (one stream, read in order): the client's node has read
    // the secret by the time the client joins.
    await call(publisher, "broadcast", early, "rec", { i: 1 });
    await until(seen, 2);
    await call(socket, "join", late);
    await call(publisher, "broadcast", late, "rec", { i: 2 });
    await until(seen, 3);
    const id = socket.id;
    // The stored session says where it joined the late room: an extra field of
    // Switchboard's, which Node's adapter ignores (below, Node resumes this session).
    const saved = await untilSessionSaved(ctx, socket, [early, late]);
    assert.ok(late in (saved.joined ?? {}), `what Redis holds: ${JSON.stringify(saved)}`);

    // It comes back elsewhere claiming the offset from before its join (an old or
    // forged one): everything after it, except the late room's events from before.
    await dropAndWaitUntilNoticed(socket, publisher, late);
    await call(publisher, "broadcast", late, "rec", { i: 3 });
    socket._lastOffset = claimed;
    await reconnectElsewhere(socket, node);
    await assertRecovered(socket, { id, rooms: [id, early, late], from: node });
    await until(seen, 6);
    await barrier(socket);
    assert.deepEqual(seen, [0, 1, 2, 1, 2, 3].map((i) => [{ i }]), "the secret is never replayed");

    // Dropped again, it resumes on the Node.js node, which reads the same stored
    // session (the extra field ignored) with its rooms.
    const nodeServer = ctx.cluster.node[0];
    await untilSessionSaved(ctx, socket, [early, late]);
    await dropAndWaitUntilNoticed(socket, publisher, late);
    await call(publisher, "broadcast", late, "rec", { i: 4 });
    socket.io.uri = nodeServer.url;
    try {
      await reconnect(socket);
    } finally {
      socket.io.uri = ctx.lb.url;
    }
    assert.equal(socket.recovered, true, `recovered on ${nodeServer.name}`);
    assert.equal(socket.id, id);
    assert.equal(await first(socket, "whoami"), nodeServer.name);
    assert.deepEqual(sorted(await first(socket, "rooms")), sorted([id, early, late]), "rooms kept by Node");
    await until(seen, 7);
    await barrier(socket);
    assert.deepEqual(seen, [0, 1, 2, 1, 2, 3, 4].map((i) => [{ i }]), "and only the event missed since");
  });

  test("a client that comes back before its frozen node noticed it left is recovered, and stays so when that node wakes (fails on Node)", async () => {
    const room = fresh("flap");
    const { socket, node } = await viaBalancer();
    const publisher = await connectTo(ctx, ctx.cluster.node[0]);
    await call(socket, "join", room);
    const seen = recordData(socket, "rec");
    await call(publisher, "broadcast", room, "rec", { i: 0 });
    await until(seen, 1);
    const id = socket.id;
    // A frozen node never saves what it had not saved yet (see untilSessionSaved).
    await untilSessionSaved(ctx, socket, [room]);

    // The old node cannot see the connection go away: it is frozen (a network flap
    // looks the same to it until its ping timeout), and out of the balancer's rotation.
    // Every thread of it is stopped before the client leaves (`freeze`), and still is
    // once the client is back elsewhere: it cannot have noticed.
    const pid = node.fixture.child.pid;
    await ctx.lb.setState(node.port, "maint");
    await freeze(pid);
    try {
      const gone = once(socket, "disconnect");
      socket.io.engine.close();
      await gone;
      for (let i = 1; i <= 3; i++) await call(publisher, "broadcast", room, "rec", { i });
      await reconnect(socket);
      await assertRecovered(socket, { id, rooms: [id, room], from: node });
      await until(seen, 4);
      assert.ok(
        frozen(pid),
        `${node.name} stayed frozen until ${id} was back elsewhere (threads: ${threadStates(pid)})`,
      );
    } finally {
      node.resume();
      await ctx.lb.setState(node.port, "ready");
    }
    // Awake, the old node sees its connection closed; the socket lives on elsewhere.
    const now = await first(socket, "whoami");
    await waitFor(
      async () => {
        const listed = (await first(publisher, "fetch-sockets", room)).filter((s) => s.id === id);
        return listed.length === 1 && listed[0].data.node === now;
      },
      { what: `${id} listed once, on ${now}, after ${node.name} woke up` },
    );
    assert.deepEqual(sorted(await first(socket, "rooms")), sorted([id, room]), "rooms kept after the old node woke");
    await call(publisher, "broadcast", room, "rec", { i: 4 });
    await until(seen, 5);
    await barrier(socket);
    assert.deepEqual(seen, [0, 1, 2, 3, 4].map((i) => [{ i }]), "every event once, in order");
  });
});
