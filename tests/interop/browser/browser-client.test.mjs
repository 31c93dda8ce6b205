// The official browser bundle (socket.io.min.js) in headless Chromium, loaded from a page
// on another origin than the server, so every polling request is a CORS request. Any
// uncaught exception or console error in a test's pages fails that test.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startFixture } from "../lib/fixture.mjs";
import { CHROMIUM, CHROMIUM_ARGS, startSite } from "./harness.mjs";

const MODES = [
  { name: "default transports", opts: {}, final: "websocket" },
  { name: "polling only", opts: { transports: ["polling"] }, final: "polling" },
];

let server;
let site;
let siteUrl;
let browser;
const contexts = [];
const pageErrors = [];

before(async () => {
  server = await startFixture();
  site = await startSite();
  siteUrl = `http://127.0.0.1:${site.address().port}/`;
  assert.notEqual(site.address().port, server.port);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  site?.close();
  await server?.stop();
});

// Every test fails on an uncaught exception or a console error in any of its pages, even
// when its own assertions passed (a throwing afterEach fails the test it follows).
afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], `page errors: ${errors.join(" | ")}`);
});

/** A fresh browser context (its own cookies and cache, like another user) with the page loaded. */
async function openPage() {
  const ctx = await browser.newContext();
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(`${msg.text()} (${msg.location().url})`);
  });
  await page.goto(siteUrl);
  return page;
}

/**
 * A `message-with-ack` round trip from the page: the server sent its answer after
 * anything it had sent this page before, so that has arrived once it resolves.
 */
async function barrier(page) {
  assert.deepEqual(await page.evaluate(() => window.harness.call("message-with-ack", "barrier")), ["barrier"]);
}

async function connectPage(mode, auth = {}) {
  const page = await openPage();
  const info = await page.evaluate(
    ([url, opts, auth]) => window.harness.connect(url, { ...opts, auth }),
    [server.url, mode.opts, auth],
  );
  const transport = await page.evaluate((name) => window.harness.settleOn(name), mode.final);
  return { page, info, transport };
}

describe("browser page origin", () => {
  test("the page is served from another origin than the server (CORS is exercised)", async () => {
    const page = await openPage();
    const origin = await page.evaluate(() => location.origin);
    assert.notEqual(origin, new URL(server.url).origin);
    // A plain cross-origin fetch of the handshake must be readable: CORS allows it.
    const handshake = await page.evaluate(async (url) => {
      const res = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
      return { status: res.status, body: await res.text() };
    }, server.url);
    assert.equal(handshake.status, 200);
    assert.match(handshake.body, /^0\{.*"sid":/);
  });
});

for (const mode of MODES) {
  describe(`browser client (${mode.name})`, () => {
    test("connects with auth, gets it echoed, and settles on the expected transport", async () => {
      const auth = { token: "browser-token", n: 1 };
      const { info, transport } = await connectPage(mode, auth);
      assert.deepEqual(info.auth, auth);
      assert.equal(typeof info.id, "string");
      assert.equal(transport, mode.final);
    });

    test("emit with ack and message-back", async () => {
      const { page } = await connectPage(mode);
      const res = await page.evaluate(async () => {
        const ack = await window.harness.call("message-with-ack", "hi", { a: [1, 2] }, null);
        window.harness.socket.emit("message", "echo", 3);
        const back = await window.harness.waitFor("message-back");
        return { ack, back };
      });
      assert.deepEqual(res.ack, ["hi", { a: [1, 2] }, null]);
      assert.deepEqual(res.back, ["echo", 3]);
    });

    test("server→client ack from the browser", async () => {
      const { page } = await connectPage(mode);
      const result = await page.evaluate(async () => {
        window.harness.socket.on("please-ack", (x, ack) => ack("browser got", x));
        window.harness.socket.emit("request-ack", "please-ack", { q: 1 });
        return window.harness.waitFor("request-ack-result");
      });
      assert.deepEqual(result, [["browser got", { q: 1 }]]);
    });

    test("broadcast between two browser contexts", async () => {
      const a = await connectPage(mode);
      const b = await connectPage(mode);
      const room = `browser-${mode.final}`;
      for (const { page } of [a, b]) {
        assert.deepEqual(await page.evaluate((r) => window.harness.call("join", r), room), [true]);
      }
      assert.deepEqual(
        await a.page.evaluate((r) => window.harness.call("broadcast", r, "news", "to all"), room),
        [true],
      );
      assert.deepEqual(await a.page.evaluate(() => window.harness.waitFor("news")), ["to all"]);
      assert.deepEqual(await b.page.evaluate(() => window.harness.waitFor("news")), ["to all"]);

      await b.page.evaluate((r) => window.harness.call("broadcast-except-self", r, "chat", "from b"), room);
      assert.deepEqual(await a.page.evaluate(() => window.harness.waitFor("chat")), ["from b"]);
      // Once each: anything more the server sent a page has arrived by its barrier.
      for (const { page } of [a, b]) await barrier(page);
      for (const [name, { page }] of [["a", a], ["b", b]]) {
        const news = await page.evaluate(() => window.harness.received("news"));
        assert.deepEqual(news, [["to all"]], `${name}: news once`);
      }
      assert.deepEqual(await a.page.evaluate(() => window.harness.received("chat")), [["from b"]], "a: chat once");
      assert.deepEqual(await b.page.evaluate(() => window.harness.received("chat")), []);
    });

    test("binary: ArrayBuffer and Uint8Array, nested, 64 KiB, and in acks both ways", async () => {
      const { page } = await connectPage(mode);
      const res = await page.evaluate(async () => {
        const buf = new Uint8Array(256).map((_, i) => i).buffer;
        const small = new Uint8Array([7, 8, 9]);
        const [ackBuf, ackObj] = await window.harness.call("message-with-ack", buf, { deep: [small] });
        window.harness.socket.on("bin-ack", (x, ack) => ack(new Uint8Array([250, 251]).buffer, x));
        window.harness.socket.emit("request-ack", "bin-ack", small);
        const [[fromClient, echoed]] = await window.harness.waitFor("request-ack-result");
        const big = new Uint8Array(64 * 1024).map((_, i) => (i * 7) & 0xff);
        const [bigBack] = await window.harness.call("message-with-ack", big.buffer);
        const bigOk =
          bigBack instanceof ArrayBuffer &&
          bigBack.byteLength === big.length &&
          new Uint8Array(bigBack).every((b, i) => b === big[i]);
        return {
          bigOk,
          ackBuf: describeBinary(ackBuf),
          nested: describeBinary(ackObj.deep[0]),
          fromClient: describeBinary(fromClient),
          echoed: describeBinary(echoed),
        };
      });
      const range = Array.from({ length: 256 }, (_, i) => i);
      assert.equal(res.bigOk, true, "a 64 KiB ArrayBuffer comes back byte for byte");
      assert.deepEqual(res.ackBuf, { type: "ArrayBuffer", bytes: range });
      assert.deepEqual(res.nested, { type: "ArrayBuffer", bytes: [7, 8, 9] });
      assert.deepEqual(res.fromClient, { type: "ArrayBuffer", bytes: [250, 251] });
      assert.deepEqual(res.echoed, { type: "ArrayBuffer", bytes: [7, 8, 9] });
    });

    test("binary broadcast between two browser contexts", async () => {
      const a = await connectPage(mode);
      const b = await connectPage(mode);
      const room = `browser-bin-${mode.final}`;
      for (const { page } of [a, b]) await page.evaluate((r) => window.harness.call("join", r), room);
      await a.page.evaluate(
        (r) => window.harness.call("broadcast", r, "blob", new Uint8Array([1, 2, 3]).buffer, "tag"),
        room,
      );
      // Both members, the sender included, get it once.
      for (const [name, { page }] of [["a", a], ["b", b]]) {
        await page.evaluate(() => window.harness.waitFor("blob"));
        await barrier(page);
        const got = await page.evaluate(() =>
          window.harness.received("blob").map(([bin, tag]) => ({ bin: describeBinary(bin), tag })),
        );
        const want = [{ bin: { type: "ArrayBuffer", bytes: [1, 2, 3] }, tag: "tag" }];
        assert.deepEqual(got, want, `${name}: blob once`);
      }
    });

    test("disconnect-me gives 'io server disconnect'", async () => {
      const { page } = await connectPage(mode);
      const reason = await page.evaluate(
        () =>
          new Promise((resolve) => {
            window.harness.socket.once("disconnect", resolve);
            window.harness.socket.emit("disconnect-me");
          }),
      );
      assert.equal(reason, "io server disconnect");
    });
  });
}

describe("browser client CORS preflight", () => {
  test("polling with a custom request header passes the CORS preflight", async () => {
    const page = await openPage();
    const info = await page.evaluate(
      (url) =>
        window.harness.connect(url, {
          transports: ["polling"],
          extraHeaders: { "x-interop": "1" },
        }),
      server.url,
    );
    assert.deepEqual(info.auth, {});
    assert.equal(info.transport, "polling");
    const ack = await page.evaluate(() => window.harness.call("message-with-ack", "through preflight"));
    assert.deepEqual(ack, ["through preflight"]);
  });
});
