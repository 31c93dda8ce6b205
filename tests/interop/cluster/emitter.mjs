// `@socket.io/redis-emitter` over ioredis: what a backend without a Socket.IO server
// uses to emit into the cluster. It publishes on the Redis pub/sub channels of
// `@socket.io/redis-adapter` (`socket.io#/#`, `socket.io#/#<room>#`), so it reaches
// the nodes of a `redis` cluster (the streams adapter does not read those channels).

import { Emitter } from "@socket.io/redis-emitter";
import { Redis } from "ioredis";

/** Resolves with `{ emitter, close }` once the Redis connection is ready. */
export async function createEmitter(redisUrl) {
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
  client.on("error", () => {}); // surfaced by the commands that fail
  await client.connect();
  return {
    emitter: new Emitter(client),
    close: () => client.quit().catch(() => client.disconnect()),
  };
}
