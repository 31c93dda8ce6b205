// A long-poll forwarded to the node that owns its session, and that node dies meanwhile:
// the forwarding node must not hold the request until its forward timeout
// (pingInterval + pingTimeout + 5 s), because the client would sit that long on a dead
// session instead of opening a new one and resuming. It notices the owner left (no one
// listens on its Redis channel any more) and answers `400 Session ID unknown`, as for a
// session no node holds.
//
// Two `switchboard serve` nodes over Redis (lib/serve-cluster.mjs) with a 2-minute
// pingInterval, so the forward timeout is 2 min 25 s and the safety net of the wait
// below (60 s) cannot be met by it. The Engine.IO requests are made by hand (fetch), so
// the test controls which node each one reaches: the session is opened on node 1, and
// its CONNECT and long-polls go to node 2, which forwards them; node 1 is SIGKILLed
// while node 2 waits for its answer to a poll.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Redis } from "ioredis";
import { startServeCluster } from "../lib/serve-cluster.mjs";
import { startRedis } from "../cluster/redis.mjs";

const UNKNOWN_SID = { code: 1, message: "Session ID unknown" };
/** Far below the forward timeout this test's config gives (145 s); a safety net only. */
const ANSWER_WITHIN_MS = 60_000;

let redis;
let cluster;
before(async () => {
  redis = await startRedis();
  cluster = await startServeCluster({
    redisUrl: redis.url,
    nodes: 2,
    config: { engine: { ping_interval: "2m" } },
  });
});
after(async () => {
  try {
    await cluster?.stop();
  } finally {
    await redis?.close();
  }
});

/** One Engine.IO polling request to `node`: `{ status, body }`. */
async function poll(node, { sid, method = "GET", body, timeout = 10_000 } = {}) {
  const query = new URLSearchParams({ EIO: "4", transport: "polling", ...(sid ? { sid } : {}) });
  const res = await fetch(`${node.url}/socket.io/?${query}`, {
    method,
    body,
    headers: body ? { "content-type": "text/plain;charset=UTF-8" } : {},
    signal: AbortSignal.timeout(timeout),
  });
  return { status: res.status, body: await res.text() };
}

test("a long-poll forwarded to an owner that dies is answered 'Session ID unknown', not held until the forward timeout", async () => {
  const [owner, forwarder] = cluster.nodes;
  const open = await poll(owner);
  assert.equal(open.status, 200, open.body);
  assert.ok(open.body.startsWith("0"), `an Engine.IO open packet: ${open.body}`);
  const { sid, pingInterval } = JSON.parse(open.body.slice(1));
  assert.equal(pingInterval, 120_000);

  // The CONNECT and its answer travel through node 2, forwarded to node 1.
  assert.deepEqual(await poll(forwarder, { sid, method: "POST", body: "40" }), { status: 200, body: "ok" });
  const connected = await poll(forwarder, { sid });
  assert.equal(connected.status, 200, connected.body);
  assert.match(connected.body, /^40\{"sid":/, "the CONNECT answer, through node 2");

  // Nothing more to send: node 1 holds this poll until its next ping, 2 minutes away.
  // The test listens on node 1's forwarding channel (`<prefix>-fwd#<tag>`, the tag
  // starting the session id) to see the request go out, then stops listening, since it
  // would count as a listener there: a request published to nobody is refused at once,
  // which is not what this test is about.
  const spy = new Redis(redis.url);
  await spy.subscribe(`socket.io-fwd#${sid.slice(0, 6)}`);
  const forwarded = once(spy, "messageBuffer");
  const held = poll(forwarder, { sid, timeout: ANSWER_WITHIN_MS });
  await forwarded;
  await spy.quit();
  await owner.kill();

  const answer = await held;
  assert.equal(answer.status, 400, answer.body);
  assert.deepEqual(JSON.parse(answer.body), UNKNOWN_SID);
});
