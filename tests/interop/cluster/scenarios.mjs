// The cross-node behaviours every Redis adapter must have, run by the test file of each
// adapter on its own mixed cluster (Switchboard nodes and one Node.js Socket.IO node):
// broadcasts both ways, remote room operations, fetchSockets, server-side emits,
// broadcasts with acks, the server count, and (pub/sub adapter) the Redis emitter.
// Each operation is asked from a client on a Switchboard node and from one on the
// Node.js node, so each implementation has to serve the other's requests.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { barrier, call, once, until } from "../lib/client.mjs";
import { waitFor } from "../lib/wait.mjs";
import { createEmitter } from "./emitter.mjs";
import {
  SIDES,
  byId,
  connectTo,
  first,
  fresh,
  oneClientPerNode,
  recordData,
  sorted,
} from "./support.mjs";

/** Events each member publishes in the broadcast test. */
const PER_PUBLISHER = 20;

/** Waits until `socket`'s rooms equal `want` (both sorted). */
async function roomsBecome(socket, want) {
  const target = JSON.stringify(sorted(want));
  let last;
  await waitFor(
    async () => (last = JSON.stringify(sorted(await first(socket, "rooms")))) === target,
    { what: `rooms of ${socket.id} to be ${target}` },
  ).catch((err) => {
    throw new Error(`${err.message}; they are ${last}`);
  });
}

export function crossNodeTests(ctx, { emitter = false } = {}) {
  const nodes = () => ctx.cluster.nodes;

  test("every node counts the whole cluster and names itself", async () => {
    for (const { node, socket } of await oneClientPerNode(ctx)) {
      assert.equal(await first(socket, "server-count"), nodes().length, `server-count on ${node.name}`);
      assert.equal(await first(socket, "whoami"), node.name);
    }
  });

  test("broadcasts cross between every pair of nodes, each publisher's events in order", async () => {
    const room = fresh("bcast");
    const members = [...(await oneClientPerNode(ctx)), ...(await oneClientPerNode(ctx))];
    for (const m of members) assert.deepEqual(await call(m.socket, "join", room), [true]);
    const seen = members.map((m) => recordData(m.socket, "bc"));
    await Promise.all(
      members.map(async (m, from) => {
        for (let k = 0; k < PER_PUBLISHER; k++) {
          assert.deepEqual(await call(m.socket, "broadcast", room, "bc", { from, k }), [true]);
        }
      }),
    );
    const total = members.length * PER_PUBLISHER;
    for (const s of seen) await until(s, total);
    // A late copy (a duplicate still on its way) arrives before a round trip's answer.
    for (const m of members) await barrier(m.socket);
    for (const [i, s] of seen.entries()) {
      assert.equal(s.length, total, `member ${i} (${members[i].node.name}) got duplicates`);
      for (let from = 0; from < members.length; from++) {
        const ks = s.filter(([d]) => d.from === from).map(([d]) => d.k);
        assert.deepEqual(
          ks,
          [...Array(PER_PUBLISHER).keys()],
          `member ${i} on ${members[i].node.name}: events of publisher ${from} on ${members[from].node.name}`,
        );
      }
    }
  });

  // notepack (the `redis` adapter's broadcasts) keeps only the low 64 bits of a whole
  // number beyond them, so between Node servers `1e20` arrives as another number.
  // Every float that large is whole. A Switchboard node sends it as the float64 it is:
  // every receiver, on a Switchboard or a Node.js node, gets the same number.
  test("large numbers a Switchboard node broadcasts arrive unchanged on every node", async () => {
    const room = fresh("big");
    const members = await oneClientPerNode(ctx);
    for (const m of members) assert.deepEqual(await call(m.socket, "join", room), [true]);
    const seen = members.map((m) => recordData(m.socket, "big"));
    const numbers = [1e20, -(2 ** 70), 6.02e23, 1e300, Number.MAX_VALUE, 2 ** 63, 1e15, 0.5];
    const publishers = members.filter((m) => m.node.kind === "switchboard");
    for (const [k, m] of publishers.entries()) {
      assert.deepEqual(await call(m.socket, "broadcast", room, "big", { k, numbers }), [true]);
    }
    for (const s of seen) await until(s, publishers.length);
    for (const m of members) await barrier(m.socket);
    for (const [i, s] of seen.entries()) {
      const where = `member ${i} (${members[i].node.name})`;
      // Each publisher's event once: k = 0 .. publishers.length - 1.
      assert.deepEqual(
        s.map(([d]) => d.k).sort((a, b) => a - b),
        [...publishers.keys()],
        `${where}: one event from each publisher`,
      );
      for (const [d] of s) assert.deepEqual(d.numbers, numbers, `${where}, publisher ${d.k}`);
    }
  });

  for (const side of SIDES) {
    describe(side.label, () => {
      const asker = () => connectTo(ctx, side.pick(ctx.cluster));

      test("a room broadcast reaches the members on every node and nobody else", async () => {
        const room = fresh("only");
        const everyone = fresh("everyone");
        const members = await oneClientPerNode(ctx);
        const outsiders = await oneClientPerNode(ctx);
        const sender = await asker();
        for (const m of members) await call(m.socket, "join", room);
        for (const m of [...members, ...outsiders]) await call(m.socket, "join", everyone);
        const got = [...members, ...outsiders].map((m) => recordData(m.socket, "only"));
        const sentinel = [...members, ...outsiders].map((m) => recordData(m.socket, "sentinel"));
        assert.deepEqual(await call(sender, "broadcast", room, "only", { n: 1 }), [true]);
        // Published after `only` by the same node: once it arrived, `only` would have too.
        assert.deepEqual(await call(sender, "broadcast", everyone, "sentinel", { n: 2 }), [true]);
        for (const s of sentinel) await until(s, 1);
        for (const m of [...members, ...outsiders]) await barrier(m.socket);
        got.forEach((s, i) => {
          const who = i < members.length ? members[i] : outsiders[i - members.length];
          const want = i < members.length ? [[{ n: 1 }]] : [];
          assert.deepEqual(s, want, `${i < members.length ? "member" : "outsider"} on ${who.node.name}`);
        });
      });

      test("fetch-sockets lists the room's sockets on every node with their rooms and data", async () => {
        const room = fresh("fetch");
        const members = await oneClientPerNode(ctx);
        const requester = await asker();
        for (const m of members) await call(m.socket, "join", room);
        const expected = members
          .map(({ node, socket }) => ({
            id: socket.id,
            rooms: sorted([socket.id, room]),
            data: { node: node.name },
          }))
          .sort(byId);
        assert.deepEqual(await first(requester, "fetch-sockets", room), expected);

        const all = await first(requester, "fetch-sockets", null);
        assert.deepEqual(all, [...all].sort(byId), "sorted by id");
        const self = { id: requester.id, data: { node: side.pick(ctx.cluster).name } };
        for (const { id, data } of [...expected, self]) {
          const entry = all.find((s) => s.id === id);
          assert.ok(entry, `${id} missing from fetch-sockets(null)`);
          assert.deepEqual(entry.data, data);
        }
        assert.deepEqual(await first(requester, "fetch-sockets", fresh("empty")), []);
      });

      test("sockets-join and sockets-leave change the rooms of sockets on every node", async () => {
        const room = fresh("sj");
        const extra = fresh("sj-extra");
        const members = await oneClientPerNode(ctx);
        const requester = await asker();
        for (const m of members) await call(m.socket, "join", room);

        assert.deepEqual(await call(requester, "sockets-join", room, extra), [true]);
        for (const { socket } of members) await roomsBecome(socket, [socket.id, room, extra]);
        assert.deepEqual(await first(requester, "rooms"), [requester.id], "the requester is not in the room");
        const seen = members.map((m) => recordData(m.socket, "via-extra"));
        await call(members.at(-1).socket, "broadcast", extra, "via-extra", { n: 1 });
        for (const s of seen) await until(s, 1);

        assert.deepEqual(await call(requester, "sockets-leave", room, extra), [true]);
        for (const { socket } of members) await roomsBecome(socket, [socket.id, room]);

        const everywhere = fresh("sj-all");
        assert.deepEqual(await call(requester, "sockets-join", null, everywhere), [true]);
        for (const { socket } of [...members, { socket: requester }]) {
          await waitFor(async () => (await first(socket, "rooms")).includes(everywhere), {
            what: `${socket.id} to join ${everywhere} (sockets-join null)`,
          });
        }
        assert.deepEqual(await call(requester, "sockets-leave", null, everywhere), [true]);
        for (const { socket } of [...members, { socket: requester }]) {
          await waitFor(async () => !(await first(socket, "rooms")).includes(everywhere), {
            what: `${socket.id} to leave ${everywhere} (sockets-leave null)`,
          });
        }
      });

      for (const close of [false, true]) {
        test(`disconnect-sockets (close ${close}) disconnects the room's sockets on every node`, async () => {
          const room = fresh("dc");
          const members = await oneClientPerNode(ctx);
          const bystanders = await oneClientPerNode(ctx);
          const requester = await asker();
          for (const m of members) await call(m.socket, "join", room);
          const disconnects = members.map((m) => once(m.socket, "disconnect"));
          const stray = [];
          for (const { socket } of [...bystanders, { socket: requester }]) {
            socket.on("disconnect", (reason) => stray.push(reason));
          }

          assert.deepEqual(await call(requester, "disconnect-sockets", room, close), [true]);
          const reasons = (await Promise.all(disconnects)).map(([reason]) => reason);
          for (const [i, reason] of reasons.entries()) {
            const allowed = ["io server disconnect", ...(close ? ["transport close"] : [])];
            assert.ok(allowed.includes(reason), `member on ${members[i].node.name}: reason ${reason}`);
          }
          await waitFor(async () => (await first(requester, "fetch-sockets", room)).length === 0, {
            what: "the disconnected sockets to leave fetch-sockets",
          });
          for (const b of bystanders) await barrier(b.socket);
          assert.deepEqual(stray, [], "only the room's sockets are disconnected");
        });
      }

      test("server-side-emit reaches the clients of every other node, not the sender's node", async () => {
        const perNode = await oneClientPerNode(ctx);
        const origin = side.pick(ctx.cluster);
        const requester = perNode.find((c) => c.node === origin).socket;
        const seen = perNode.map((c) => recordData(c.socket, "server-side"));
        const payload = { from: origin.name, n: 7 };
        assert.deepEqual(await call(requester, "server-side-emit", "announce", payload), [true]);
        for (const [i, c] of perNode.entries()) {
          if (c.node !== origin) await until(seen[i], 1);
        }
        // Every receiver's round trip: a second copy on its way arrives before its answer
        // (the requester's shows nothing reached the sender's node).
        for (const c of perNode) await barrier(c.socket);
        for (const [i, c] of perNode.entries()) {
          if (c.node === origin) continue;
          assert.deepEqual(seen[i], [["announce", payload]], `client on ${c.node.name}`);
        }
        assert.deepEqual(seen[perNode.findIndex((c) => c.node === origin)], [], "not on the sender's node");
      });

      test("server-side-emit-with-ack collects one reply from every other node", async () => {
        const requester = await asker();
        const others = nodes().filter((n) => n !== side.pick(ctx.cluster)).map((n) => n.name);
        assert.deepEqual(await first(requester, "server-side-emit-with-ack"), sorted(others));
      });

      test("broadcast-with-ack collects the ack of every member on every node", async () => {
        const room = fresh("bwa");
        const members = await oneClientPerNode(ctx);
        const requester = await asker();
        for (const { node, socket } of members) {
          await call(socket, "join", room);
          socket.on("ask", (...args) => {
            const ack = args.pop();
            ack({ answer: node.name, got: args[0] });
          });
        }
        const replies = await first(requester, "broadcast-with-ack", room, "ask", { q: 1 });
        const want = members
          .map(({ node }) => ({ answer: node.name, got: { q: 1 } }))
          .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
        assert.deepEqual(replies, want);
        const none = await first(requester, "broadcast-with-ack", fresh("nobody"), "ask", { q: 2 });
        assert.deepEqual(none, []);
      });
    });
  }

  if (emitter) {
    test("a @socket.io/redis-emitter publisher reaches every client, and a room's members only", async () => {
      const { emitter: em, close } = await createEmitter(ctx.redis.url);
      try {
        const room = fresh("emitter");
        const perNode = [...(await oneClientPerNode(ctx)), ...(await oneClientPerNode(ctx))];
        const members = perNode.filter((_, i) => i % 2 === 0);
        for (const m of members) await call(m.socket, "join", room);
        const toAll = perNode.map((c) => recordData(c.socket, "emitted"));
        const toRoom = perNode.map((c) => recordData(c.socket, "emitted-room"));
        const sentinel = perNode.map((c) => recordData(c.socket, "sentinel"));
        em.emit("emitted", { to: "all" });
        em.to(room).emit("emitted-room", { to: room });
        em.emit("sentinel", { n: 1 }); // same Redis connection: delivered after the two above
        for (const s of sentinel) await until(s, 1);
        for (const c of perNode) await barrier(c.socket);
        perNode.forEach((c, i) => {
          const where = `client ${i} on ${c.node.name}`;
          assert.deepEqual(toAll[i], [[{ to: "all" }]], where);
          assert.deepEqual(toRoom[i], members.includes(c) ? [[{ to: room }]] : [], where);
        });
      } finally {
        await close();
      }
    });
  }

  test("the server count drops when a node is killed and recovers when it is back", async () => {
    const victim = ctx.cluster.switchboard.at(-1);
    const watchers = await oneClientPerNode(ctx, nodes().filter((n) => n !== victim));
    const total = nodes().length;
    await victim.kill();
    for (const { node, socket } of watchers) {
      await waitFor(async () => (await first(socket, "server-count")) === total - 1, {
        what: `server-count on ${node.name} to drop to ${total - 1}`,
      });
    }
    await victim.restart();
    for (const { node, socket } of watchers) {
      await waitFor(async () => (await first(socket, "server-count")) === total, {
        what: `server-count on ${node.name} to come back to ${total}`,
      });
    }
    // The restarted node takes part again: a broadcast from another node reaches it.
    const room = fresh("back");
    const back = await connectTo(ctx, victim);
    await call(back, "join", room);
    // With the sharded adapter's dynamic mode, a room's first member on a node makes it
    // subscribe the room's channel; a broadcast published before that lands is not
    // heard there (Node's adapter alike). A context may say how to wait for it.
    await ctx.roomHeard?.(room, 1);
    const seen = recordData(back, "welcome");
    await call(watchers.at(-1).socket, "broadcast", room, "welcome", { n: 1 });
    await until(seen, 1);
    await barrier(back);
    assert.deepEqual(seen, [[{ n: 1 }]]);
  });
}
