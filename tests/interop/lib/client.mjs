// Helpers around the official `socket.io-client` for the Node interop tests: the three
// transport set-ups every behaviour runs over, connecting, and waiting for events.

import { createHmac } from "node:crypto";
import { io } from "socket.io-client";

/** A compact HS256 JWT of `claims`, signed with `secret` (what `[namespaces.auth]` checks). */
export function hs256(claims, secret) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const signed = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${signed}.${createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

/** Safety net for any single wait; never an assertion on speed. */
export const WAIT_MS = 10_000;

/**
 * Every behaviour is checked over each of these. `final` is the transport a connected
 * client is expected to settle on.
 */
export const TRANSPORT_MODES = [
  { name: "websocket only", opts: { transports: ["websocket"] }, final: "websocket" },
  { name: "polling only", opts: { transports: ["polling"] }, final: "polling" },
  { name: "polling then websocket upgrade", opts: {}, final: "websocket" },
];

/** Resolves with the arguments of the next `event` on `emitter`; rejects after `ms`. */
export function once(emitter, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    const handler = (...args) => {
      clearTimeout(timer);
      resolve(args);
    };
    emitter.once(event, handler);
  });
}

/** Collects every `event` received by `socket` (its argument lists) from now on. */
export function record(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(args));
  return seen;
}

/** Resolves once `seen` holds `n` entries; rejects after `ms`. */
export async function until(seen, n, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (seen.length < n) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms: got ${seen.length} of ${n} events`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return seen;
}

/** Emits and resolves with the acknowledgement's arguments (as an array). */
export function call(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT_MS).emit(event, ...args, (err, ...res) => {
      if (err) reject(new Error(`no ack for "${event}" within ${WAIT_MS} ms`));
      else resolve(res);
    });
  });
}

/**
 * A round trip through the server. Because each socket's packets are delivered in order,
 * anything the server sent this socket before handling the barrier has arrived once it
 * resolves; this is how tests show that an event was *not* delivered.
 */
export async function barrier(socket) {
  await call(socket, "message-with-ack", "barrier");
}

/**
 * Tracks the clients a test opens so that they are all closed afterwards:
 * `const clients = new Clients(); afterEach(() => clients.closeAll())`.
 */
export class Clients {
  constructor() {
    this.sockets = [];
  }

  /**
   * Opens a client to `url` (a namespace may be appended) and resolves once it is
   * connected, with `{ socket, auth }`, `auth` being the payload of the `auth` event the
   * server emits on connection. With `upgraded`, also waits for the websocket upgrade
   * when the mode starts on polling. Reconnection is off unless `opts` turns it on.
   */
  async connect(url, mode, opts = {}, { upgraded = true } = {}) {
    const socket = this.open(url, mode, opts);
    const auth = once(socket, "auth");
    auth.catch(() => {}); // only awaited by the tests that care
    socket.connect();
    await connected(socket);
    if (upgraded && mode.final === "websocket") await upgradedTo(socket, "websocket");
    return { socket, auth };
  }

  /** Creates a client without connecting it (`autoConnect: false`). */
  open(url, mode, opts = {}) {
    const socket = io(url, {
      forceNew: true,
      reconnection: false,
      autoConnect: false,
      ...mode.opts,
      ...opts,
    });
    this.sockets.push(socket);
    return socket;
  }

  closeAll() {
    for (const s of this.sockets.splice(0)) {
      s.io.reconnection(false);
      s.disconnect();
      s.io.engine?.close();
    }
  }
}

/** Resolves on `connect`; rejects with the `connect_error` if that comes first. */
export function connected(socket, ms = WAIT_MS) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${ms} ms waiting for "connect"`));
    }, ms);
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (err) => {
      cleanup();
      reject(new Error(`connect_error: ${err.message}`, { cause: err }));
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    };
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

/** Resolves once the socket's engine runs on `name` (waiting for `upgrade` if needed). */
export async function upgradedTo(socket, name, ms = WAIT_MS) {
  const engine = socket.io.engine;
  if (engine.transport.name === name) return;
  const [transport] = await once(engine, "upgrade", ms);
  if (transport.name !== name) {
    throw new Error(`upgraded to ${transport.name}, expected ${name}`);
  }
}

/** Bytes 0..n-1 (mod 256) as a Buffer, so every byte value is exercised. */
export function bytes(n, seed = 0) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i + seed) & 0xff;
  return b;
}

/** Any binary the client may hand back (Buffer, ArrayBuffer, typed array) as a Buffer. */
export function asBuffer(value) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (ArrayBuffer.isView(value)) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  throw new TypeError(`expected binary, got ${typeof value}: ${JSON.stringify(value)}`);
}

/** Whether `value` is binary as the client library delivers it. */
export function isBinary(value) {
  return Buffer.isBuffer(value) || value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}
