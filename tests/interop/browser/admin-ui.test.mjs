// The official Socket.IO Admin UI in headless Chromium: the real, unmodified bundle of
// `@socket.io/admin-ui` (its `ui/dist`, version pinned in package.json) against two
// `switchboard serve` nodes on a real redis-server, `[admin]` in development mode. No
// Node server runs `instrument()`, and nothing leaves the machine: node B serves the
// bundle from `[static]` (docs/admin.md's way to work without internet access), and the
// UI logs in to node A, another origin, as the hosted UI at admin.socket.io would (the
// UI polls with `withCredentials`, so A allows B's origin with `cors.credentials`:
// with `allowed_origins` alone, or the default `"*"`, Chromium refuses its polling and
// the form never logs in unless "WebSocket only?" is ticked). The two stylesheets the
// bundle's index.html loads from the internet (fonts, icons) are answered empty by the
// browser context; any other outside request fails the test.
//
// 1. The UI's own connection form (server URL, admin namespace, username, password)
//    logs in; the Servers page lists both nodes (id, pid, clients), the Sockets page
//    every user socket of both nodes, the Rooms page their rooms with the members of
//    both nodes; the disconnect button on a socket's page (a socket of node B, so the
//    command crosses the cluster) disconnects that socket.io-client (`io server
//    disconnect`), and the UI stops listing it at once (development mode's live
//    `socket_disconnected`, from node B through the adapter); reloaded, the UI logs in
//    again with its session id alone and still lists the others only.
// 2. A wrong password: the UI shows "Invalid credentials", stays on its form and saves
//    nothing.
//
// Any uncaught exception or console error in a page fails the test. Waits are bounded
// safety nets (server stats come every 2 s). `SB_UPDATE_SCREENSHOTS=1` writes the
// Servers page as seen here to docs/admin-ui.png.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, afterEach, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { startRedis } from "../cluster/redis.mjs";
import { Clients, TRANSPORT_MODES, call, once } from "../lib/client.mjs";
import { connectClient, startServeNode } from "../lib/serve-cluster.mjs";
import { waitFor } from "../lib/wait.mjs";
import { CHROMIUM, CHROMIUM_ARGS } from "./harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The UI bundle exactly as the npm package ships it. */
const UI_DIST = resolve(HERE, "../node_modules/@socket.io/admin-ui/ui/dist");
const SCREENSHOT = resolve(HERE, "../../../docs/admin-ui.png");
const [WEBSOCKET] = TRANSPORT_MODES;

/** bcrypt (cost 4, so the test spends little CPU) of `changeit`. */
const PASSWORD = "changeit";
const PASSWORD_HASH = "$2b$04$DGiHFj8ZMmuoGJBcJZxvXus40HSeThXhhgNjjSsYgnYKqu7M5nsUS";
const SERVER_A = "admin-ui-a";
const SERVER_B = "admin-ui-b";

/** Vuetify's `lg` breakpoint: the navigation drawer and the connection status show. */
const VIEWPORT = { width: 1280, height: 800 };
/** Safety net for anything the UI shows: stats arrive every 2 s from each node. */
const UI_WAIT_MS = 15_000;
/** What the bundle's index.html loads from the internet; answered with empty CSS. */
const OUTSIDE_STYLESHEETS = [
  "https://fonts.googleapis.com/css?family=Roboto:100,300,400,500,700,900",
  "https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css",
];

/** One node's config: `[admin]` in development mode, `/` open to every room, and `tables`. */
function nodeConfig(serverId, tables) {
  const admin = {
    enabled: true,
    username: "admin",
    password_hash: PASSWORD_HASH,
    mode: "development",
    server_id: serverId,
  };
  const lines = Object.entries(admin).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  const rooms = `[[namespaces]]\nname = "/"\n[namespaces.rooms]\nallow = ["*"]`;
  return `[admin]\n${lines.join("\n")}\n\n${tables}\n\n${rooms}\n`;
}

let redis;
let nodeA;
let nodeB;
let browser;
const clients = new Clients();
const contexts = [];
const pageErrors = [];
/** Every request the pages made outside 127.0.0.1 (none reaches the network). */
const outside = [];

before(async () => {
  redis = await startRedis();
  nodeB = await startServeNode({
    name: SERVER_B,
    adapter: "redis",
    redisUrl: redis.url,
    extra: nodeConfig(SERVER_B, `[static]\ndir = ${JSON.stringify(UI_DIST)}`),
  });
  nodeA = await startServeNode({
    name: SERVER_A,
    adapter: "redis",
    redisUrl: redis.url,
    extra: nodeConfig(
      SERVER_A,
      `[cors]\nallowed_origins = [${JSON.stringify(nodeB.url)}]\ncredentials = true`,
    ),
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  // A crash of a node fails the file (stop() throws unless it exits cleanly).
  const stopped = await Promise.allSettled([nodeA?.stop(), nodeB?.stop()]);
  await redis?.close();
  for (const s of stopped) if (s.status === "rejected") throw s.reason;
});

afterEach(async () => {
  clients.closeAll();
  for (const ctx of contexts.splice(0)) await ctx.close();
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], `page errors: ${errors.join(" | ")}`);
  const unexpected = outside.splice(0).filter((url) => !OUTSIDE_STYLESHEETS.includes(url));
  assert.deepEqual(unexpected, [], "the pages asked for nothing else outside the machine");
});

/** A fresh browser (no saved settings) on the UI bundle served by node B. */
async function openUi() {
  const ctx = await browser.newContext({ viewport: VIEWPORT });
  contexts.push(ctx);
  ctx.setDefaultTimeout(UI_WAIT_MS);
  await ctx.route(
    (url) => url.hostname !== "127.0.0.1",
    async (route) => {
      const url = route.request().url();
      outside.push(url);
      if (OUTSIDE_STYLESHEETS.includes(url)) {
        await route.fulfill({ status: 200, contentType: "text/css", body: "" });
      } else {
        await route.abort();
      }
    },
  );
  const page = await ctx.newPage();
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "error") pageErrors.push(`${msg.text()} (${msg.location().url})`);
  });
  await page.goto(`${nodeB.url}/`);
  return page;
}

/** The UI's connection dialog while it is open. */
const connectionDialog = (page) => page.locator(".v-dialog--active");

/**
 * Fills the UI's connection form as a person would (the admin namespace under its
 * advanced options) and presses Connect; resolves with the dialog.
 */
async function submitLogin(page, { serverUrl, password }) {
  const dialog = connectionDialog(page);
  await dialog.getByText("Connection", { exact: true }).waitFor();
  await dialog.getByLabel("Server URL").fill(serverUrl);
  await dialog.getByLabel("Username").fill("admin");
  await dialog.getByLabel("Password").fill(password);
  await dialog.getByText("Advanced options").click();
  const namespace = dialog.getByLabel("Admin namespace");
  assert.equal(await namespace.inputValue(), "/admin", "the UI's default admin namespace is Switchboard's");
  await namespace.fill("/admin");
  await dialog.getByRole("button", { name: "Connect" }).click();
  return dialog;
}

/** The connection status in the app bar (`connected` or `disconnected`). */
const connectionStatus = async (page) =>
  (await page.locator("header .v-chip:visible").textContent()).trim();

/** Waits until the app bar says `connected`. */
function untilConnected(page) {
  return waitFor(async () => (await connectionStatus(page)) === "connected", {
    timeout: UI_WAIT_MS,
    what: "the UI to be connected",
  });
}

/** Opens a page of the UI from its navigation drawer. */
async function navigate(page, title, hash) {
  await page.locator("nav").getByRole("link", { name: title, exact: true }).click();
  await waitFor(() => new URL(page.url()).hash === hash, {
    timeout: UI_WAIT_MS,
    what: `the UI to show its ${title} page`,
  });
}

/** The rows of the data table on screen, each as its cells' text (CSS case aside). */
function tableRows(page) {
  return page
    .locator(".v-main .v-data-table:visible tbody tr")
    .evaluateAll((rows) =>
      rows
        .filter((tr) => !tr.classList.contains("v-data-table__empty-wrapper"))
        .map((tr) => [...tr.cells].map((td) => td.textContent.trim())),
    );
}

/** Waits until the table on screen has rows that `accept`; resolves with them. */
function untilRows(page, what, accept) {
  return waitFor(
    async () => {
      const rows = await tableRows(page);
      return accept(rows) && rows;
    },
    { timeout: UI_WAIT_MS, what },
  );
}

/** The listed socket ids (the Sockets page's first column), sorted. */
const listedIds = (rows) => rows.map(([id]) => id).sort();

/** Asserts a PNG of VIEWPORT's size; writes it to docs/ when asked to. */
async function keepScreenshot(png) {
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [VIEWPORT.width, VIEWPORT.height]);
  if (process.env.SB_UPDATE_SCREENSHOTS === "1") await writeFile(SCREENSHOT, png);
}

describe("the Socket.IO Admin UI bundle in Chromium, two nodes on Redis", () => {
  test("logs in through its form, lists both servers, every socket and room, disconnects a socket of the other node", async () => {
    // Users on both nodes, in rooms: lobby has members on each node.
    const users = {};
    for (const [name, node, rooms] of [
      ["a1", nodeA, ["lobby"]],
      ["a2", nodeA, ["lobby", "vip"]],
      ["b1", nodeB, ["lobby"]],
      ["b2", nodeB, []],
    ]) {
      users[name] = await connectClient(clients, node.url, WEBSOCKET);
      for (const room of rooms) assert.deepEqual(await call(users[name], "join", room), [{ ok: true }]);
    }
    const ids = (...names) => names.map((n) => users[n].id).sort();

    const page = await openUi();
    assert.notEqual(new URL(page.url()).origin, nodeA.url, "the UI is on another origin than its node");
    await submitLogin(page, { serverUrl: nodeA.url, password: PASSWORD });
    await connectionDialog(page).waitFor({ state: "detached" });
    await untilConnected(page);
    assert.match(
      await page.evaluate(() => localStorage.getItem("session_id")),
      /^[0-9a-f]{32}$/,
      "the UI kept the session id Switchboard sent",
    );

    // Servers: both nodes (sorted by id), healthy, with their pids and clients (A has
    // the UI's connection besides its two users).
    await navigate(page, "Servers", "#/servers");
    const servers = await untilRows(page, "the Servers page to list both nodes with their clients", (rows) =>
      rows.length === 2 && rows[0][4] === "3" && rows[1][4] === "2",
    );
    assert.deepEqual(
      servers.map(([id, , pid, , clientsCount, , status]) => [id, pid, clientsCount, status]),
      [
        [SERVER_A, String(nodeA.server.pid), "3", "Healthy"],
        [SERVER_B, String(nodeB.server.pid), "2", "Healthy"],
      ],
    );
    await page.mouse.move(0, 0);
    await keepScreenshot(await page.screenshot());

    // Sockets of namespace `/`: every user of both nodes, and nothing else.
    await navigate(page, "Sockets", "#/sockets");
    const sockets = await untilRows(page, "the Sockets page to list the users", (rows) => rows.length >= 4);
    assert.deepEqual(listedIds(sockets), ids("a1", "a2", "b1", "b2"));
    for (const [, address, transport] of sockets) {
      assert.deepEqual([address, transport], ["127.0.0.1", "WebSocket"]);
    }

    // Rooms (public ones, the default): members counted across both nodes.
    await navigate(page, "Rooms", "#/rooms");
    const rooms = await untilRows(page, "the Rooms page to list lobby and vip", (rows) => rows.length >= 2);
    assert.deepEqual(
      rooms.map(([name, type, count]) => [name, type, count]),
      [
        ["lobby", "Public", "3"],
        ["vip", "Public", "1"],
      ],
    );

    // b1's page (from the Sockets list), its Socket card's disconnect button.
    const target = users.b1;
    await navigate(page, "Sockets", "#/sockets");
    await page.locator(".v-main tbody tr", { hasText: target.id }).locator("td").first().click();
    await page.waitForURL((url) => url.hash.endsWith(`/sockets/${target.id}`));
    const button = page.locator(".v-main table", { hasText: target.id }).locator("button:has(.mdi-logout)");
    await button.hover();
    await page.getByText("Disconnect this Socket instance", { exact: true }).waitFor();
    const disconnected = once(target, "disconnect", UI_WAIT_MS);
    await button.click();
    const [reason] = await disconnected;
    assert.equal(reason, "io server disconnect", "the UI's command reached node B's socket");
    for (const name of ["a1", "a2", "b2"]) assert.equal(users[name].connected, true, `${name} stays`);
    await nodeA.waitUntilGone(target.id);

    // Live: the UI drops b1 from its list without a reload (`socket_disconnected`).
    await navigate(page, "Sockets", "#/sockets");
    const live = await untilRows(page, "the Sockets page to drop the disconnected socket", (rows) => rows.length === 3);
    assert.deepEqual(listedIds(live), ids("a1", "a2", "b2"));
    // Reloaded, the UI logs in with its session id alone and lists the others only.
    await page.reload();
    await untilConnected(page);
    assert.equal(await connectionDialog(page).count(), 0, "no password asked again");
    const after = await untilRows(page, "the Sockets page to list the users left", (rows) => rows.length >= 3);
    assert.deepEqual(listedIds(after), ids("a1", "a2", "b2"));
  });

  test("a wrong password is refused: the UI says so and stays on its form", async () => {
    const page = await openUi();
    const dialog = await submitLogin(page, { serverUrl: nodeA.url, password: "not-the-password" });
    await dialog.getByText("Invalid credentials", { exact: true }).waitFor();
    assert.equal(await connectionDialog(page).count(), 1, "the form stays open");
    assert.equal(await connectionStatus(page), "disconnected");
    assert.deepEqual(
      await page.evaluate(() => [localStorage.getItem("session_id"), localStorage.getItem("server_url")]),
      [null, null],
      "no session and no settings saved",
    );
  });
});
