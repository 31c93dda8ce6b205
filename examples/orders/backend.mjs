// The orders example's backend: everything the application's own server does, in one
// file with no dependencies (node:http, node:crypto; Node 20+).
//
//   POST /token        {"user": "alice"} → {"token": "<JWT>"}    demo login, no password
//   GET  /orders       (Authorization: Bearer <JWT>) → the user's orders
//   POST /orders       (Authorization: Bearer <JWT>) {"item": "tea"} → a new order, whose
//                      status then moves placed → preparing → shipped → delivered; every
//                      change is pushed to the user's sockets through Switchboard's HTTP
//                      API (POST /api/v1/emit to the room user:<sub>)
//   POST /hooks        Switchboard's signed webhooks (connect, disconnect + reason, ...)
//   GET  /hooks/log    what the webhooks reported (for the demo and its test)
//   GET  /             the page (public/), GET /config.json tells it where Switchboard is
//
// Switchboard itself checks the JWT on connect and joins the socket to user:<sub>
// (switchboard.toml); this backend never holds a socket.
//
// Settings (environment; the defaults match switchboard.toml):
//   PORT=8080  HOST=127.0.0.1
//   SWITCHBOARD_URL=http://127.0.0.1:3000     where this backend calls the HTTP API
//   SWITCHBOARD_PUBLIC_URL=SWITCHBOARD_URL    where browsers connect
//   SWITCHBOARD_API_KEY, JWT_SECRET, WEBHOOK_SECRET
//   ORDER_STEP_MS=2000                        time between two status changes
//
// The first stdout line is `listening on http://HOST:PORT`; then one line per event.

import { createServer } from "node:http";
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";

const env = process.env;
const PORT = Number(env.PORT ?? 8080);
const HOST = env.HOST ?? "127.0.0.1";
const SWITCHBOARD_URL = (env.SWITCHBOARD_URL ?? "http://127.0.0.1:3000").replace(/\/$/, "");
const SWITCHBOARD_PUBLIC_URL = (env.SWITCHBOARD_PUBLIC_URL ?? SWITCHBOARD_URL).replace(/\/$/, "");
const API_KEY = env.SWITCHBOARD_API_KEY ?? "orders-example-key-0123456789";
const JWT_SECRET = env.JWT_SECRET ?? "orders-example-jwt-secret-0123456789abcdef";
const WEBHOOK_SECRET = env.WEBHOOK_SECRET ?? "orders-example-webhook-secret-0123456789";
const ORDER_STEP_MS = Number(env.ORDER_STEP_MS ?? 2000);
const TOKEN_TTL_S = 3600;
const STATUSES = ["placed", "preparing", "shipped", "delivered"];
const PUBLIC = join(dirname(fileURLToPath(import.meta.url)), "public");
const MAX_BODY = 64 * 1024;

function log(...parts) {
  console.log(new Date().toISOString(), ...parts);
}

// ------------------------------------------------------------------------------ JWT

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** An HS256 JWT for `sub`, valid for TOKEN_TTL_S. */
function signToken(sub) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({ sub, iat: now, exp: now + TOKEN_TTL_S }));
  const sig = createHmac("sha256", JWT_SECRET).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${sig}`;
}

/** The claims of a valid HS256 token signed by us, else null. */
function verifyToken(token) {
  const parts = String(token ?? "").split(".");
  if (parts.length !== 3) return null;
  const [header, payload, sig] = parts;
  try {
    if (JSON.parse(Buffer.from(header, "base64url")).alg !== "HS256") return null;
    const expected = createHmac("sha256", JWT_SECRET).update(`${header}.${payload}`).digest();
    const given = Buffer.from(sig, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const claims = JSON.parse(Buffer.from(payload, "base64url"));
    if (typeof claims.sub !== "string" || !(claims.exp > Date.now() / 1000)) return null;
    return claims;
  } catch {
    return null;
  }
}

function bearerClaims(req) {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
  return m ? verifyToken(m[1]) : null;
}

// ------------------------------------------------------------------------- webhooks

/** Switchboard's signature check (crates/hooks/README.md): v1=HMAC(secret, "ts.body"). */
function verifyWebhook(timestamp, body, signature, tolerance = 300) {
  if (!/^\d+$/.test(timestamp ?? "") || Math.abs(Date.now() / 1000 - Number(timestamp)) > tolerance) {
    return false;
  }
  const expected = createHmac("sha256", WEBHOOK_SECRET).update(`${timestamp}.`).update(body).digest();
  return String(signature ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("v1="))
    .some((s) => {
      const given = Buffer.from(s.slice(3), "hex");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}

const seenEvents = new Set(); // delivery is at least once: ignore repeated ids
const socketUsers = new Map(); // socket id → sub, from `connection` events
const hookLog = []; // the last events, for GET /hooks/log
const HOOK_LOG_MAX = 1000;

function handleHook(event) {
  if (seenEvents.has(event.id)) return;
  seenEvents.add(event.id);
  const d = event.data ?? {};
  const entry = { id: event.id, type: event.type, timestamp: event.timestamp, socket_id: d.socket_id ?? null };
  switch (event.type) {
    case "connection":
      if (d.socket_id && d.claims?.sub) socketUsers.set(d.socket_id, d.claims.sub);
      log(`hook connection user=${d.claims?.sub ?? "?"} socket=${d.socket_id} address=${d.address ?? "-"}`);
      break;
    case "disconnection":
      entry.reason = d.reason ?? null;
      // Events are not delivered in order; the user is looked up again when read.
      log(`hook disconnection user=${socketUsers.get(d.socket_id) ?? "?"} socket=${d.socket_id} reason=${JSON.stringify(d.reason)}`);
      break;
    case "room_occupied":
    case "room_vacated":
      entry.room = d.room ?? null;
      log(`hook ${event.type} room=${d.room}`);
      break;
    default:
      log(`hook ${event.type}`);
  }
  hookLog.push(entry);
  if (hookLog.length > HOOK_LOG_MAX) hookLog.shift();
}

// --------------------------------------------------------------------------- orders

const orders = new Map(); // sub → [order]

/** Pushes an order's state to every socket of its user (all their tabs). */
async function pushOrder(sub, order) {
  try {
    const res = await fetch(`${SWITCHBOARD_URL}/api/v1/emit`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ rooms: [`user:${sub}`], event: "order:status", args: [order] }),
    });
    const body = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${body}`);
    log(`pushed order ${order.id} ${order.status} to user:${sub} ${body}`);
  } catch (err) {
    log(`cannot push order ${order.id} to user:${sub}: ${err.message}`);
  }
}

function placeOrder(sub, item) {
  const order = { id: randomUUID().slice(0, 8), item, status: STATUSES[0], updated: Date.now() };
  if (!orders.has(sub)) orders.set(sub, []);
  orders.get(sub).push(order);
  pushOrder(sub, { ...order });
  // A kitchen and a courier, simulated.
  let step = 0;
  const timer = setInterval(() => {
    step += 1;
    Object.assign(order, { status: STATUSES[step], updated: Date.now() });
    pushOrder(sub, { ...order });
    if (step === STATUSES.length - 1) clearInterval(timer);
  }, ORDER_STEP_MS);
  timers.add(timer);
  return order;
}
const timers = new Set();

// ----------------------------------------------------------------------------- HTTP

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };
const FILES = { "/": "index.html", "/app.js": "app.js", "/socket.io.min.js": "socket.io.min.js" };

function send(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function parseJson(buf) {
  try {
    return JSON.parse(buf.toString("utf8") || "{}");
  } catch {
    return null;
  }
}

async function route(req, res) {
  const path = new URL(req.url, "http://x").pathname;
  const method = req.method;

  if (method === "GET" && FILES[path]) {
    const file = FILES[path];
    const body = await readFile(join(PUBLIC, file));
    res.writeHead(200, { "content-type": TYPES[extname(file)], "cache-control": "no-cache" });
    return res.end(body);
  }
  if (method === "GET" && path === "/config.json") {
    return send(res, 200, { switchboardUrl: SWITCHBOARD_PUBLIC_URL });
  }
  if (method === "POST" && path === "/token") {
    const body = parseJson(await readBody(req));
    const user = body?.user;
    if (typeof user !== "string" || !/^[A-Za-z0-9_-]{1,32}$/.test(user)) {
      return send(res, 400, { error: "user: 1 to 32 letters, digits, _ or -" });
    }
    log(`login user=${user}`);
    return send(res, 200, { user, token: signToken(user) });
  }
  if (path === "/orders" && (method === "GET" || method === "POST")) {
    const claims = bearerClaims(req);
    if (!claims) return send(res, 401, { error: "invalid or missing token" });
    if (method === "GET") return send(res, 200, orders.get(claims.sub) ?? []);
    const body = parseJson(await readBody(req));
    const item = typeof body?.item === "string" && body.item.trim() ? body.item.trim().slice(0, 100) : "tea";
    return send(res, 201, placeOrder(claims.sub, item));
  }
  if (method === "POST" && path === "/hooks") {
    const raw = await readBody(req); // verify the raw bytes before parsing them
    if (!verifyWebhook(req.headers["switchboard-timestamp"], raw, req.headers["switchboard-signature"])) {
      log("hook refused: bad signature");
      return send(res, 401, { error: "bad signature" });
    }
    const event = parseJson(raw);
    if (!event) return send(res, 400, { error: "bad json" });
    handleHook(event);
    res.writeHead(204).end();
    return;
  }
  if (method === "GET" && path === "/hooks/log") {
    return send(
      res,
      200,
      hookLog.map((e) => ({ ...e, user: e.socket_id ? (socketUsers.get(e.socket_id) ?? null) : null })),
    );
  }
  send(res, 404, { error: "not found" });
}

const server = createServer((req, res) => {
  route(req, res).catch((err) => {
    log(`error ${req.method} ${req.url}: ${err.message}`);
    if (!res.headersSent) send(res, 500, { error: "internal error" });
    else res.destroy();
  });
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`listening on http://${HOST}:${port}`);
  log(`switchboard at ${SWITCHBOARD_URL} (browsers: ${SWITCHBOARD_PUBLIC_URL})`);
});

function shutdown() {
  for (const t of timers) clearInterval(t);
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
