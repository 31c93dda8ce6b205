// Many events keep their order: client→server, server→client, acks, and broadcasts.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fixtureSuite } from "../lib/suite.mjs";
import { TRANSPORT_MODES, WAIT_MS, call, record, until } from "../lib/client.mjs";

const { server, clients } = fixtureSuite();

const range = (n) => Array.from({ length: n }, (_, i) => i);

for (const mode of TRANSPORT_MODES) {
  describe(`ordering (${mode.name})`, () => {
    test("1000 messages come back as message-back in the order sent", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const backs = record(socket, "message-back");
      for (const i of range(1000)) socket.emit("message", i, `payload ${i}`);
      await until(backs, 1000, 30_000);
      assert.deepEqual(
        backs.map(([i]) => i),
        range(1000),
      );
      backs.forEach(([i, text]) => assert.equal(text, `payload ${i}`));
    });

    test("acks and events sent to one socket arrive in the order the server sent them", async () => {
      const { socket } = await clients.connect(server.url, mode);
      const log = [];
      socket.on("message-back", (i) => log.push(["event", i]));
      const acks = [];
      for (const i of range(300)) {
        if (i % 2 === 0) socket.emit("message", i);
        else {
          acks.push(
            new Promise((resolve, reject) => {
              socket.timeout(WAIT_MS * 3).emit("message-with-ack", i, (err, j) => {
                if (err) return reject(err);
                log.push(["ack", j]);
                resolve();
              });
            }),
          );
        }
      }
      await Promise.all(acks);
      await until(log, 300);
      assert.deepEqual(
        log,
        range(300).map((i) => [i % 2 === 0 ? "event" : "ack", i]),
      );
    });

    test("500 broadcasts from one sender reach every member in order", async () => {
      const room = `order-${mode.final}-${Math.random()}`;
      const sockets = [];
      for (let k = 0; k < 3; k++) {
        const { socket } = await clients.connect(server.url, mode);
        await call(socket, "join", room);
        sockets.push(socket);
      }
      const seen = sockets.map((s) => record(s, "seq"));
      const acked = [];
      for (const i of range(500)) {
        acked.push(call(sockets[0], "broadcast", room, "seq", i));
      }
      await Promise.all(acked);
      for (const s of seen) {
        await until(s, 500, 30_000);
        assert.deepEqual(
          s.map(([i]) => i),
          range(500),
        );
      }
    });

    test("broadcasts from two senders are each in order at every receiver", async () => {
      const room = `order2-${mode.final}-${Math.random()}`;
      const sockets = [];
      for (let k = 0; k < 3; k++) {
        const { socket } = await clients.connect(server.url, mode);
        await call(socket, "join", room);
        sockets.push(socket);
      }
      const seen = sockets.map((s) => record(s, "from"));
      const acked = [];
      for (const i of range(200)) {
        acked.push(call(sockets[0], "broadcast", room, "from", "a", i));
        acked.push(call(sockets[1], "broadcast", room, "from", "b", i));
      }
      await Promise.all(acked);
      for (const s of seen) {
        await until(s, 400, 30_000);
        for (const who of ["a", "b"]) {
          assert.deepEqual(
            s.filter(([w]) => w === who).map(([, i]) => i),
            range(200),
            `order of sender ${who}`,
          );
        }
      }
    });
  });
}
