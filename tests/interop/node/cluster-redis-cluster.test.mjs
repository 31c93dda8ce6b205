// Switchboard nodes and a Node.js Socket.IO 4.8 server on a real Redis Cluster (three
// masters, one replica each; `redis+cluster://` URL). Each `describe` runs on a Redis
// Cluster of its own:
//
// - sharded Pub/Sub (`@socket.io/redis-adapter`'s `createShardedAdapter`, dynamic
//   subscription mode): the cross-node behaviours of every adapter between two
//   Switchboard nodes and the Node.js one, and the wire format itself, read by a plain
//   Redis Cluster client: a Switchboard node's room broadcast is SPUBLISHed as the Node
//   adapter's JSON on the room's own shard channel `socket.io#/#<room>#` (which the node
//   subscribes while it has a member in the room and leaves afterwards), its broadcast
//   to the namespace on `socket.io#/#` and never on a room's channel; an emit to a
//   socket id crosses nodes both ways;
// - static subscription mode (every node only on `socket.io#/#`): room broadcasts cross
//   nodes both ways, on the namespace channel;
// - a master failover: the master serving `socket.io#/#` is SIGKILLed; once its replica
//   took over, broadcasts (namespace-wide and to a room of that shard) flow again within
//   a few seconds between clients on every node, no client is disconnected, and every
//   node counts the three nodes again;
// - resharding (the slot of a channel or key moved to another master while in use, so
//   clients get `ASK` and then `MOVED`): a room channel's slot moves and the Switchboard
//   nodes subscribe again on its new master, room broadcasts flowing again; the stream's
//   slot moves under a steady publish and every acknowledged event still reaches every
//   subscriber once, in order;
// - classic pub/sub (`@socket.io/redis-adapter`'s `createAdapter`) on a Redis Cluster:
//   room broadcasts cross every pair of nodes, a Switchboard node's in order (a Node.js
//   server's may be reordered: ioredis publishes to any node of the cluster);
// - Redis Streams (`@socket.io/redis-streams-adapter` wire format) on a Redis Cluster:
//   the cross-node behaviours, and connection state recovery of a client whose
//   Switchboard node was SIGKILLed, on the other Switchboard node.
//
// See cluster/CONTRACT.md. Against an all-Node cluster (CLUSTER_SWITCHBOARD_CMD=node
// .../node-server.mjs) the recovery test is skipped: Node saves a session only when the
// socket disconnects, so a killed node's clients are not recoverable.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "ioredis";
import { barrier, call, connected, once, until } from "../lib/client.mjs";
import { waitFor } from "../lib/wait.mjs";
import { switchboardIsStandIn } from "../cluster/cluster.mjs";
import { crossNodeTests } from "../cluster/scenarios.mjs";
import { connectTo, first, fresh, oneClientPerNode, recordData, sorted, useCluster } from "../cluster/support.mjs";

/** The namespace's channel of the sharded adapter (`socket.io#<nsp>#`). */
const NSP_CHANNEL = "socket.io#/#";
/** A room's own channel in the dynamic subscription modes. */
const roomChannel = (room) => `${NSP_CHANNEL}${room}#`;
/** `BROADCAST` in socket.io-adapter's ClusterAdapter `MessageType`. */
const BROADCAST = 3;
/** After the failover: broadcasts must flow again within this long. */
const RESUME_MS = 10_000;
/** The pumps of the failover test publish this often. */
const PUMP_EVERY_MS = 200;

/**
 * A plain ioredis Cluster client that SSUBSCRIBEs `channels` (one by one: they may
 * live on different shards) and keeps what arrives on each: `messages.get(channel)` is
 * the list of payloads (text).
 */
async function tap(ctx, channels) {
  const client = new Cluster(ctx.redisCluster.seeds, { shardedSubscribers: true });
  client.on("error", () => {});
  const messages = new Map(channels.map((c) => [c, []]));
  client.on("smessage", (channel, message) => messages.get(channel)?.push(message));
  try {
    for (const channel of channels) await client.ssubscribe(channel);
  } catch (err) {
    client.disconnect();
    throw err;
  }
  return { messages, close: () => client.disconnect() };
}

/** The adapter messages (parsed JSON) on `channel` that broadcast `event`. */
function broadcastsOf(tapped, channel, event) {
  return tapped.messages
    .get(channel)
    .map((text) => {
      assert.equal(text[0], "{", `a JSON message on ${channel}: ${text}`);
      return JSON.parse(text);
    })
    .filter((m) => m.type === BROADCAST && m.data?.packet?.data?.[0] === event);
}

/** Waits until `channel` has `n` shard subscribers in the whole Redis Cluster. */
async function subscribersBecome(ctx, channel, n, why) {
  let last;
  await waitFor(async () => (last = await ctx.redisCluster.shardNumSub(channel)) === n, {
    what: `${n} subscriber(s) of ${channel} (${why})`,
  }).catch((err) => {
    throw new Error(`${err.message}; there are ${last}`);
  });
}

/** Checks one BROADCAST message of the sharded adapter's wire format. */
function assertBroadcast(message, { rooms, event, args }) {
  assert.equal(message.type, BROADCAST, "type BROADCAST");
  assert.equal(message.nsp, "/", "nsp");
  assert.equal(typeof message.uid, "string", "uid");
  assert.ok(message.uid.length > 0, "uid not empty");
  assert.deepEqual(message.data.opts.rooms, rooms, "data.opts.rooms");
  assert.deepEqual(message.data.opts.except, [], "data.opts.except");
  assert.equal(message.data.packet.type, 2, "data.packet.type (EVENT)");
  assert.deepEqual(message.data.packet.data, [event, ...args], "data.packet.data");
}

/**
 * Room broadcasts both ways between every pair of nodes: one member per node in a fresh
 * room, each node publishes once, every member receives every event once.
 */
async function roomBroadcastsCrossEveryNode(ctx) {
  const room = fresh("room-cross");
  const members = await oneClientPerNode(ctx);
  for (const m of members) assert.deepEqual(await call(m.socket, "join", room), [true]);
  const seen = members.map((m) => recordData(m.socket, "cross"));
  for (const [from, m] of members.entries()) {
    assert.deepEqual(await call(m.socket, "broadcast", room, "cross", { from: m.node.name }), [true], `from ${from}`);
  }
  for (const s of seen) await until(s, members.length);
  await Promise.all(members.map((m) => barrier(m.socket)));
  const want = sorted(members.map((m) => m.node.name));
  for (const [i, s] of seen.entries()) {
    const froms = sorted(s.map(([d]) => d.from));
    assert.deepEqual(froms, want, `member on ${members[i].node.name}: one event from each node`);
  }
}

describe("sharded pub/sub on a Redis Cluster (2 Switchboard + 1 Node, dynamic mode)", () => {
  const ctx = useCluster({ adapter: "redis-sharded", redisCluster: true, switchboard: 2, node: 1 });
  // A room's channel is subscribed once its first member joins on a node (see scenarios.mjs).
  ctx.roomHeard = async (room, nodes) => {
    await waitFor(async () => (await ctx.redisCluster.shardNumSub(roomChannel(room))) >= nodes, {
      what: `${nodes} node(s) subscribed to ${roomChannel(room)}`,
    });
  };

  crossNodeTests(ctx);

  test("the wire: a room broadcast is SPUBLISHed on the room's shard channel, a namespace broadcast is not", async () => {
    const room = fresh("wire");
    const channel = roomChannel(room);
    const tapped = await tap(ctx, [channel, NSP_CHANNEL]);
    try {
      const member = await connectTo(ctx, ctx.cluster.switchboard[0]);
      await subscribersBecome(ctx, channel, 1, "only the tap before anyone joins");
      assert.deepEqual(await call(member, "join", room), [true]);
      await subscribersBecome(ctx, channel, 2, "the tap and sb-1, which has a member in the room");

      const seen = recordData(member, "wire");
      const everyone = recordData(member, "wire-all");
      assert.deepEqual(await call(member, "broadcast", room, "wire", { n: 1 }), [true]);
      assert.deepEqual(await call(member, "broadcast-flags", null, {}, "wire-all", { n: 2 }), [true]);
      // Same node, same channel as the first: once it is on the channel, so is the first,
      // and the namespace broadcast would be if it were published there.
      assert.deepEqual(await call(member, "broadcast", room, "wire", { n: 3 }), [true]);
      await until(seen, 2);
      await until(everyone, 1);
      await waitFor(() => tapped.messages.get(channel).length >= 2, { what: `two messages on ${channel}` });
      await waitFor(() => broadcastsOf(tapped, NSP_CHANNEL, "wire-all").length >= 1, {
        what: `the namespace broadcast on ${NSP_CHANNEL}`,
      });

      const onRoom = tapped.messages.get(channel).map((text) => JSON.parse(text));
      assert.equal(onRoom.length, 2, `only the two room broadcasts on ${channel}: ${JSON.stringify(onRoom)}`);
      assertBroadcast(onRoom[0], { rooms: [room], event: "wire", args: [{ n: 1 }] });
      assertBroadcast(onRoom[1], { rooms: [room], event: "wire", args: [{ n: 3 }] });
      assert.equal(onRoom[0].uid, onRoom[1].uid, "one node, one uid");

      const onNsp = broadcastsOf(tapped, NSP_CHANNEL, "wire-all");
      assert.equal(onNsp.length, 1, "the namespace broadcast once on the namespace channel");
      assertBroadcast(onNsp[0], { rooms: [], event: "wire-all", args: [{ n: 2 }] });
      assert.equal(onNsp[0].uid, onRoom[0].uid, "the same node's uid");
      assert.deepEqual(broadcastsOf(tapped, NSP_CHANNEL, "wire"), [], "the room broadcasts not on the namespace channel");

      assert.deepEqual(await call(member, "leave", room), [true]);
      await subscribersBecome(ctx, channel, 1, "sb-1 unsubscribes once its last member left");
    } finally {
      tapped.close();
    }
  });

  test("an emit to a socket id crosses nodes both ways (Switchboard and Node.js sockets)", async () => {
    const onSb = await connectTo(ctx, ctx.cluster.switchboard[0]);
    const onNode = await connectTo(ctx, ctx.cluster.node[0]);
    const atSb = recordData(onSb, "direct");
    const atNode = recordData(onNode, "direct");
    assert.deepEqual(await call(onNode, "broadcast", onSb.id, "direct", { to: "sb" }), [true]);
    assert.deepEqual(await call(onSb, "broadcast", onNode.id, "direct", { to: "node" }), [true]);
    await until(atSb, 1);
    await until(atNode, 1);
    await barrier(onSb);
    await barrier(onNode);
    assert.deepEqual(atSb, [[{ to: "sb" }]], "the Switchboard socket, from the Node.js node");
    assert.deepEqual(atNode, [[{ to: "node" }]], "the Node.js socket, from a Switchboard node");
  });
});

describe("sharded pub/sub while a room channel's slot moves to another master (2 Switchboard + 1 Node)", () => {
  const ctx = useCluster({ adapter: "redis-sharded", redisCluster: true, switchboard: 2, node: 1 });

  test("the Switchboard nodes subscribe again on the new master and room broadcasts flow again", async (t) => {
    const rc = ctx.redisCluster;
    const room = fresh("reshard-room");
    const members = await oneClientPerNode(ctx);
    for (const m of members) assert.deepEqual(await call(m.socket, "join", room), [true]);
    await subscribersBecome(ctx, roomChannel(room), members.length, "every node has a member");

    const { slot, from, to } = await rc.migrateSlotOf(roomChannel(room));
    t.diagnostic(`slot ${slot} of ${roomChannel(room)} moved from ${from.address} to ${to.address}`);
    const switchboard = members.filter((m) => m.node.kind === "switchboard");
    // Redis unsubscribes the channel on the old master; each Switchboard node subscribes
    // it again where it lives now.
    await waitFor(async () => Number((await to.command("PUBSUB", "SHARDNUMSUB", roomChannel(room)))[1]) >= switchboard.length, {
      timeout: RESUME_MS,
      what: `the Switchboard nodes subscribed to ${roomChannel(room)} on ${to.address}`,
    });

    // Delivery is at most once across the move: pump until every Switchboard member has
    // an event from every Switchboard member.
    const got = switchboard.map((m) => recordData(m.socket, "moved"));
    const complete = () =>
      switchboard.every((receiver, i) =>
        switchboard.every((sender) => sender === receiver || got[i].some(([d]) => d.from === sender.node.name)),
      );
    let pumping = true;
    const pumps = switchboard.map(async (m) => {
      for (let k = 0; pumping; k++) {
        m.socket.timeout(RESUME_MS).emit("broadcast", room, "moved", { from: m.node.name, k }, () => {});
        await sleep(PUMP_EVERY_MS);
      }
    });
    try {
      await waitFor(complete, { timeout: RESUME_MS, interval: 50, what: "room broadcasts between the Switchboard nodes" });
    } finally {
      pumping = false;
      await Promise.all(pumps);
    }
    const node = members.find((m) => m.node.kind === "node");
    if (node) {
      const onNew = Number((await to.command("PUBSUB", "SHARDNUMSUB", roomChannel(room)))[1]);
      t.diagnostic(`subscribers of the room channel on its new master: ${onNew} (the Node.js node's client decides for itself)`);
    }
  });
});

describe("sharded pub/sub on a Redis Cluster, static subscription mode (2 Switchboard + 1 Node)", () => {
  const mode = ["--subscription-mode", "static"];
  const ctx = useCluster({
    adapter: "redis-sharded",
    redisCluster: true,
    switchboard: 2,
    node: 1,
    extraArgs: mode,
    nodeArgs: mode,
  });

  test("room broadcasts cross every pair of nodes both ways", async () => {
    await roomBroadcastsCrossEveryNode(ctx);
  });

  test("room broadcasts go on the namespace channel; nobody subscribes a room's channel", async () => {
    const room = fresh("static-wire");
    const tapped = await tap(ctx, [NSP_CHANNEL]);
    try {
      const members = await oneClientPerNode(ctx);
      for (const m of members) assert.deepEqual(await call(m.socket, "join", room), [true]);
      const seen = members.map((m) => recordData(m.socket, "static"));
      const sb = members.find((m) => m.node.kind === "switchboard");
      assert.deepEqual(await call(sb.socket, "broadcast", room, "static", { n: 1 }), [true]);
      for (const s of seen) await until(s, 1);
      await waitFor(() => broadcastsOf(tapped, NSP_CHANNEL, "static").length >= 1, {
        what: `the room broadcast on ${NSP_CHANNEL}`,
      });
      const [message] = broadcastsOf(tapped, NSP_CHANNEL, "static");
      assertBroadcast(message, { rooms: [room], event: "static", args: [{ n: 1 }] });
      assert.equal(await ctx.redisCluster.shardNumSub(roomChannel(room)), 0, `subscribers of ${roomChannel(room)}`);
    } finally {
      tapped.close();
    }
  });
});

describe("sharded pub/sub across a Redis Cluster master failover (2 Switchboard + 1 Node)", () => {
  const ctx = useCluster({ adapter: "redis-sharded", redisCluster: true, switchboard: 2, node: 1 });

  test("after the master of socket.io#/# is SIGKILLed, broadcasts flow again between every node and the count is whole", async (t) => {
    const rc = ctx.redisCluster;
    const doomed = await rc.masterOf(NSP_CHANNEL);
    // A room whose own channel lives on the same shard, so room broadcasts cross it too.
    let room;
    for (let k = 0; !room; k++) {
      const candidate = fresh(`failover-${k}`);
      if ((await rc.masterOf(roomChannel(candidate))) === doomed) room = candidate;
      assert.ok(k < 200, "no room name on the doomed shard");
    }
    const members = await oneClientPerNode(ctx);
    const disconnects = [];
    for (const m of members) {
      assert.deepEqual(await call(m.socket, "join", room), [true]);
      m.socket.on("disconnect", (reason) => disconnects.push(`${m.node.name}: ${reason}`));
    }
    // Before: both kinds of broadcast work.
    const before = members.map((m) => recordData(m.socket, "before"));
    await call(members[0].socket, "broadcast", room, "before", { n: 1 });
    await call(members[0].socket, "broadcast-flags", null, {}, "before", { n: 2 });
    for (const s of before) await until(s, 2);

    const { killed, master, ms } = await rc.killMasterOf(NSP_CHANNEL);
    t.diagnostic(`master ${killed.address} SIGKILLed; ${master.address} took over after ${ms} ms`);
    const resumedAt = Date.now();

    // Every member publishes both kinds every PUMP_EVERY_MS until every other member has
    // received both from it.
    const got = members.map((m) => ({
      room: recordData(m.socket, "after-room"),
      all: recordData(m.socket, "after-all"),
    }));
    const from = (seen, name) => seen.some(([d]) => d.from === name);
    const complete = () =>
      members.every((receiver, i) =>
        members.every(
          (sender) =>
            sender === receiver || (from(got[i].room, sender.node.name) && from(got[i].all, sender.node.name)),
        ),
      );
    const missing = () =>
      members.flatMap((receiver, i) =>
        members
          .filter((s) => s !== receiver)
          .flatMap((s) => [
            ...(from(got[i].room, s.node.name) ? [] : [`${s.node.name} -> ${receiver.node.name} (room)`]),
            ...(from(got[i].all, s.node.name) ? [] : [`${s.node.name} -> ${receiver.node.name} (namespace)`]),
          ]),
      );
    let pumping = true;
    const pumps = members.map(async (m) => {
      for (let k = 0; pumping; k++) {
        const payload = { from: m.node.name, k };
        m.socket.timeout(RESUME_MS).emit("broadcast", room, "after-room", payload, () => {});
        m.socket.timeout(RESUME_MS).emit("broadcast-flags", null, {}, "after-all", payload, () => {});
        await sleep(PUMP_EVERY_MS);
      }
    });
    try {
      await waitFor(complete, { timeout: RESUME_MS, interval: 50, what: "broadcasts between every pair of nodes" }).catch(
        (err) => {
          throw new Error(`${err.message}; missing: ${missing().join(", ")}; disconnects: ${disconnects.join(", ")}`);
        },
      );
    } finally {
      pumping = false;
      await Promise.all(pumps);
    }
    t.diagnostic(`broadcasts flowed again ${Date.now() - resumedAt} ms after the new master took over`);
    assert.deepEqual(disconnects, [], "no client lost its connection");
    for (const { node, socket } of members) {
      let last;
      await waitFor(async () => (last = await first(socket, "server-count")) === ctx.cluster.nodes.length, {
        timeout: RESUME_MS,
        what: `server-count on ${node.name}`,
      }).catch((err) => {
        throw new Error(`${err.message}; it answers ${JSON.stringify(last)}`);
      });
    }
  });
});

describe("classic pub/sub (`redis`) on a Redis Cluster (2 Switchboard + 1 Node)", () => {
  // Works, as with Node's createAdapter on a cluster client, but every message crosses
  // the cluster bus to every Redis node: the sharded adapter is the one that scales.
  const ctx = useCluster({ adapter: "redis", redisCluster: true, switchboard: 2, node: 1 });

  test("room broadcasts cross every pair of nodes; a Switchboard node's arrive in order, Node's complete", async (t) => {
    const room = fresh("classic");
    const members = await oneClientPerNode(ctx);
    for (const m of members) assert.deepEqual(await call(m.socket, "join", room), [true]);
    const seen = members.map((m) => recordData(m.socket, "seq"));
    const PER_NODE = 30;
    await Promise.all(
      members.map(async (m) => {
        for (let i = 0; i < PER_NODE; i++) {
          assert.deepEqual(await call(m.socket, "broadcast", room, "seq", { from: m.node.name, i }), [true]);
        }
      }),
    );
    for (const s of seen) await until(s, members.length * PER_NODE);
    let reordered = 0;
    for (const [r, s] of seen.entries()) {
      for (const sender of members) {
        const got = s.filter(([d]) => d.from === sender.node.name).map(([d]) => d.i);
        const want = Array.from({ length: PER_NODE }, (_, i) => i);
        const what = `member on ${members[r].node.name}: events of ${sender.node.name}`;
        if (sender.node.kind === "switchboard") {
          assert.deepEqual(got, want, `${what}, once and in order`);
        } else {
          // ioredis sends each PUBLISH to any node of the cluster; the cluster bus then
          // relays them, so a Node.js publisher's events may arrive out of order (all-Node
          // clusters see the same).
          assert.deepEqual([...got].sort((a, b) => a - b), want, `${what}, once`);
          if (got.some((x, k) => x !== k)) reordered++;
        }
      }
    }
    t.diagnostic(`members that got the Node.js node's events out of order: ${reordered}`);
    assert.equal(Number(await first(members[0].socket, "server-count")), members.length, "server count");
  });
});

describe("Redis Streams on a Redis Cluster (2 Switchboard + 1 Node)", () => {
  // A Node.js node too: the cross-node behaviours are asked on both implementations.
  const ctx = useCluster({ adapter: "redis-streams", redisCluster: true, switchboard: 2, node: 1 });

  crossNodeTests(ctx);

  test(
    "a client whose Switchboard node was SIGKILLed resumes on the other one with the events broadcast meanwhile",
    { skip: switchboardIsStandIn() && "Node saves a session only when the socket disconnects" },
    async () => {
      const [victim, other] = ctx.cluster.switchboard;
      const room = fresh("crash");
      const socket = await connectTo(ctx, victim);
      const publisher = await connectTo(ctx, other);
      assert.deepEqual(await call(socket, "join", room), [true]);
      const seen = recordData(socket, "rec");
      assert.deepEqual(await call(publisher, "broadcast", room, "rec", { i: 0 }), [true]);
      await until(seen, 1); // the client now holds an offset
      const id = socket.id;

      const gone = once(socket, "disconnect");
      await victim.kill();
      await gone;
      try {
        for (let i = 1; i <= 5; i++) {
          assert.deepEqual(await call(publisher, "broadcast", room, "rec", { i }), [true]);
        }
        // The same client (its session id and offset) reconnects to the other node.
        socket.io.uri = other.url;
        socket.connect();
        await connected(socket);
        assert.equal(socket.recovered, true, "socket.recovered after reconnecting");
        assert.equal(socket.id, id, "a recovered socket keeps its id");
        assert.equal(await first(socket, "whoami"), other.name, "back on the other node");
        assert.deepEqual(sorted(await first(socket, "rooms")), sorted([id, room]), "a recovered socket keeps its rooms");
        await until(seen, 6);
        assert.deepEqual(await call(publisher, "broadcast", room, "rec", { i: 6 }), [true]);
        await until(seen, 7);
        await barrier(socket);
        assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6].map((i) => [{ i }]), "every event once, in order");
      } finally {
        await victim.restart();
        // Back in service for the tests after this one.
        const back = await connectTo(ctx, victim);
        assert.equal(await first(back, "whoami"), victim.name);
      }
    },
  );

  test("the stream's slot moves to another master under a steady publish: every acknowledged event arrives once, in order", async (t) => {
    const rc = ctx.redisCluster;
    const room = fresh("reshard-stream");
    const [sb1, sb2] = ctx.cluster.switchboard;
    const subscribers = [await connectTo(ctx, sb1), await connectTo(ctx, sb2)];
    for (const s of subscribers) assert.deepEqual(await call(s, "join", room), [true]);
    const seen = subscribers.map((s) => recordData(s, "seq"));
    const publisher = await connectTo(ctx, sb1);
    const acked = [];
    let pumping = true;
    const pump = (async () => {
      for (let i = 0; pumping; i++) {
        const [ok] = await call(publisher, "broadcast", room, "seq", { i });
        if (ok === true) acked.push(i);
        await sleep(10);
      }
    })();
    try {
      await waitFor(() => acked.length >= 20, { what: "events acknowledged before the move" });
      const { slot, from, to } = await rc.migrateSlotOf("socket.io");
      t.diagnostic(`the stream's slot ${slot} moved from ${from.address} to ${to.address} after ${acked.length} events`);
      const moved = acked.length;
      await waitFor(() => acked.length >= moved + 20, { what: "events acknowledged after the move" });
    } finally {
      pumping = false;
      await pump;
    }
    const last = acked.at(-1);
    for (const [n, s] of seen.entries()) {
      await waitFor(() => s.some(([d]) => d.i === last), { what: `the last acknowledged event on subscriber ${n}` });
      await barrier(subscribers[n]);
      const got = s.map(([d]) => d.i);
      const twice = got.filter((i, k) => got.indexOf(i) !== k);
      assert.deepEqual(twice, [], `subscriber ${n}: no event twice`);
      assert.deepEqual(got, [...got].sort((a, b) => a - b), `subscriber ${n}: in order`);
      const lost = acked.filter((i) => !got.includes(i));
      assert.deepEqual(lost, [], `subscriber ${n}: every acknowledged event`);
    }
  });
});
