// A mixed cluster over Redis pub/sub (`@socket.io/redis-adapter` wire format): three
// Switchboard nodes and one Node.js Socket.IO 4.8 server with the official adapter, on a
// real redis-server. Broadcasts, remote room operations, fetchSockets, server-side
// emits and broadcasts with acks work across nodes whichever side asks, and a
// `@socket.io/redis-emitter` publisher reaches every client. See cluster/CONTRACT.md.

import { describe } from "node:test";
import { crossNodeTests } from "../cluster/scenarios.mjs";
import { useCluster } from "../cluster/support.mjs";

const ctx = useCluster({ adapter: "redis", switchboard: 3, node: 1 });

describe("cluster over Redis pub/sub (3 Switchboard nodes + 1 Node.js node)", () => {
  crossNodeTests(ctx, { emitter: true });
});
