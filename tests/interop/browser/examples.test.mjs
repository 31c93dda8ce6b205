// The examples (examples/chat, examples/orders) as their users see them: the real pages in
// headless Chromium, against the real `switchboard` binary started with the example's
// config, and for orders the example's Node backend. Any uncaught exception or console
// error in a test's pages fails that test.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";
import { startProcess } from "../lib/fixture.mjs";
import { switchboardBin } from "../lib/switchboard.mjs";
import { BUNDLE, CHROMIUM, CHROMIUM_ARGS } from "./harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, "../../..");
/** Safety net for every wait on the page or the backend; never a pacing delay. */
const WAIT_MS = 15_000;

/** Starts `switchboard serve` with an example's config, from the repository root. */
function startSwitchboard(config, env = {}) {
  return startProcess(switchboardBin(), ["serve", "--config", config, "--listen", "127.0.0.1:0"], {
    cwd: REPO_ROOT,
    env,
  });
}

/** A port free right now (for a process that must be named before it starts). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value; fails after WAIT_MS with `what`. */
async function eventually(what, fn, detail = () => "") {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail()}`);
    await sleep(50);
  }
}

async function getJson(url, headers = {}) {
  const res = await fetch(url, { headers });
  assert.equal(res.status, 200, `GET ${url}: ${res.status}`);
  return res.json();
}

async function postJson(url, body, headers = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const data = await res.json();
  assert.ok(res.ok, `POST ${url}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

let browser;
const contexts = [];
const pageErrors = [];

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
});

// Every test fails on an uncaught exception or a console error in any of its pages, even
// when its own assertions passed (a throwing afterEach fails the test it follows).
afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], `page errors: ${errors.join(" | ")}`);
});

/** A fresh browser context (another user) with `url` loaded. */
async function openPage(url) {
  const ctx = await browser.newContext();
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(`${msg.text()} (${msg.location().url})`);
  });
  await page.goto(url);
  return page;
}

/** The socket id the page shows once connected. */
async function connectedSocketId(page) {
  await page.locator('#status[data-state="connected"]').waitFor();
  return page.locator("#status").getAttribute("data-socket");
}

test("the examples ship the same Socket.IO client bundle as tests/interop pins", async () => {
  const pinned = await readFile(BUNDLE);
  for (const copy of ["examples/chat/public/socket.io.min.js", "examples/orders/public/socket.io.min.js"]) {
    const got = await readFile(resolve(REPO_ROOT, copy));
    assert.ok(
      got.equals(pinned),
      `${copy} differs from ${BUNDLE}: copy the pinned socket.io-client's dist/socket.io.min.js there`,
    );
  }
});

describe("examples/chat", () => {
  const KEY = "chat-example-key-0123456789"; // examples/chat/switchboard.toml
  let sb;

  before(async () => {
    sb = await startSwitchboard("examples/chat/switchboard.toml");
  });
  after(async () => {
    await sb?.stop();
  });

  async function joinAs(name, room) {
    const page = await openPage(`${sb.url}/`);
    await connectedSocketId(page);
    await page.fill("#name", name);
    await page.fill("#room", room);
    await page.click("#join");
    await page.locator("#joined", { hasText: room }).waitFor();
    return page;
  }

  const messagesWith = (page, text) => page.locator("#messages li", { has: page.locator(".text", { hasText: text }) });

  test("two users in chat:general: a message reaches the other once, the sender sees it once, presence is 2", async () => {
    const room = "chat:general";
    const ann = await joinAs("ann", room);
    const ben = await joinAs("ben", room);

    // Presence, as the README's curl asks for it.
    const presence = await getJson(`${sb.url}/api/v1/namespaces/%2F/rooms/${room}`, {
      authorization: `Bearer ${KEY}`,
    });
    assert.equal(presence.size, 2);
    assert.equal(presence.socket_ids.length, 2);

    await ann.fill("#text", "hello from ann");
    await ann.click("#send button[type=submit]");
    const got = messagesWith(ben, "hello from ann");
    await got.waitFor();
    assert.equal(await got.getAttribute("data-from"), "ann");
    assert.equal(await got.getAttribute("data-room"), room);

    // Ben answers; once Ann has the answer, any echo of her own message would be there.
    await ben.fill("#text", "hi ann, ben here");
    await ben.click("#send button[type=submit]");
    await messagesWith(ann, "hi ann, ben here").waitFor();

    assert.equal(await messagesWith(ann, "hello from ann").count(), 1, "the sender sees her message once");
    assert.equal(await messagesWith(ann, "hello from ann").getAttribute("class"), "mine");
    assert.equal(await messagesWith(ben, "hello from ann").count(), 1, "the other user gets it once");
    assert.equal(await messagesWith(ben, "hi ann, ben here").count(), 1);
  });

  test("a room outside chat:* is refused, and leaving stops the messages", async () => {
    const ann = await joinAs("ann", "chat:general");
    const ben = await joinAs("ben", "chat:general");

    await ann.fill("#room", "admin");
    await ann.click("#join");
    await ann.locator("#messages li.system", { hasText: "cannot join admin: room not allowed" }).waitFor();

    await ben.fill("#room", "chat:general");
    await ben.click("#leave");
    await ben.locator("#messages li.system", { hasText: "left chat:general" }).waitFor();
    await eventually("presence 1", async () => {
      const r = await getJson(`${sb.url}/api/v1/namespaces/%2F/rooms/chat%3Ageneral`, {
        authorization: `Bearer ${KEY}`,
      });
      return r.size === 1;
    });
    await ann.fill("#text", "anyone?");
    await ann.click("#send button[type=submit]");
    // Ben joins again and gets a later message, so the one sent while he was out had its chance.
    await ben.click("#join");
    await ben.locator("#joined", { hasText: "chat:general" }).waitFor();
    await ann.fill("#text", "welcome back");
    await ann.click("#send button[type=submit]");
    await messagesWith(ben, "welcome back").waitFor();
    assert.equal(await messagesWith(ben, "anyone?").count(), 0);
  });
});

describe("examples/orders", () => {
  let sb;
  let backend;
  let backendUrl;
  let backendLog = "";

  before(async () => {
    const port = await freePort();
    backendUrl = `http://127.0.0.1:${port}`;
    sb = await startSwitchboard("examples/orders/switchboard.toml", {
      SWITCHBOARD_HOOKS__WEBHOOK__URL: `${backendUrl}/hooks`,
      SWITCHBOARD_CORS__ALLOWED_ORIGINS: backendUrl,
    });
    backend = await startProcess(process.execPath, ["examples/orders/backend.mjs"], {
      cwd: REPO_ROOT,
      env: { PORT: String(port), SWITCHBOARD_URL: sb.url, ORDER_STEP_MS: "200" },
      onStdout: (chunk) => (backendLog += chunk),
    });
    assert.equal(backend.url, backendUrl);
  });
  after(async () => {
    // Switchboard first, so the hooks it sends while shutting down still find the backend.
    try {
      await sb?.stop();
    } finally {
      await backend?.stop();
    }
  });

  async function signIn(user) {
    const page = await openPage(`${backendUrl}/`);
    await page.fill("#user", user);
    await page.click("#login button[type=submit]");
    const socketId = await connectedSocketId(page);
    return { page, socketId };
  }

  /** Places an order from outside the page (as another service would). */
  async function placeOrder(user, item) {
    const { token } = await postJson(`${backendUrl}/token`, { user });
    return postJson(`${backendUrl}/orders`, { item }, { authorization: `Bearer ${token}` });
  }

  const orderIds = (page) => page.locator("#orders tr").evaluateAll((rows) => rows.map((r) => r.dataset.id));

  test("a token is required to connect", async () => {
    const res = await fetch(`${sb.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200); // the Engine.IO handshake is open; the namespace is not
    const page = await openPage(`${backendUrl}/`);
    const err = await page.evaluate(
      (url) =>
        new Promise((resolve) => {
          const s = io(url, { reconnection: false, auth: { token: "not-a-jwt" } });
          s.on("connect", () => resolve("connected?!"));
          s.on("connect_error", (e) => resolve(`${e.message}/${e.data?.code}`));
        }),
      sb.url,
    );
    assert.equal(err, "malformed token/malformed");
  });

  test("alice's order updates reach alice's page only; her disconnect reason reaches the backend", async () => {
    const alice = await signIn("alice");
    const bob = await signIn("bob");

    const aliceOrder = await placeOrder("alice", "green tea");
    const aliceRow = alice.page.locator(`#orders tr[data-id="${aliceOrder.id}"]`);
    await alice.page.locator(`#orders tr[data-id="${aliceOrder.id}"][data-status="delivered"]`).waitFor();
    assert.equal(await aliceRow.locator(".item").textContent(), "green tea");

    // Bob's own order reaches him after alice's were all sent: by then any leak would show.
    const bobOrder = await placeOrder("bob", "coffee");
    await bob.page.locator(`#orders tr[data-id="${bobOrder.id}"][data-status="delivered"]`).waitFor();
    assert.deepEqual(await orderIds(bob.page), [bobOrder.id]);
    assert.deepEqual(await orderIds(alice.page), [aliceOrder.id]);

    // Alice closes her tab: the webhook tells the backend why she left.
    await alice.page.close();
    const entry = await eventually("alice's disconnection webhook", async () => {
      const log = await getJson(`${backendUrl}/hooks/log`);
      return log.find((e) => e.type === "disconnection" && e.socket_id === alice.socketId && e.user);
    }, () => `\nbackend log:\n${backendLog}`);
    assert.equal(entry.user, "alice");
    assert.equal(entry.reason, "transport close");
    assert.match(backendLog, new RegExp(`hook disconnection user=alice socket=${alice.socketId} reason="transport close"`));

    // Bob is still connected, and his connection was reported too.
    assert.equal(await bob.page.locator("#status").getAttribute("data-state"), "connected");
    const log = await getJson(`${backendUrl}/hooks/log`);
    assert.ok(log.some((e) => e.type === "connection" && e.socket_id === bob.socketId && e.user === "bob"));
  });
});
