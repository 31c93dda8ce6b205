// A TCP proxy that can make a network flap on loopback: the clients behind it see their
// connections drop at once, while the server side sees nothing at all.
//
// Clients connect to the proxy, which relays each connection, byte for byte, to
// 127.0.0.1:`targetPort` (HAProxy in the chaos test). `flap(downMs)` then, for every
// connection open at that moment:
// - destroys the client side, so the client sees its connection closed immediately
//   (a WebSocket closes, a pending long-polling request fails) and reconnects;
// - silences the server side: it stops reading from it and writing to it but keeps it
//   open, so no FIN or RST ever reaches the server, which learns that the client is
//   gone only from its own ping timeout, exactly as when a client's network vanishes.
//
// For `downMs` after that, new connections are reset as soon as they arrive (the network
// is still down); later ones are relayed normally (it is back). The down time matters
// for long-polling: the official client, on a failed request, at once sends its old
// session a `close` packet on a new connection, which would tell the server the client
// left; while the network is down that request fails, as it would for real, and the
// client's reconnect attempts fail fast and are retried until the network is back.
//
// `hold()` makes the link slow instead: what the server sends stays in the proxy (the
// sockets are not read) until `release()`, on open connections and new ones alike;
// what clients send still goes through.
//
// `close()` destroys everything, silenced connections included.

import { createConnection, createServer } from "node:net";

/** Starts a proxy on a free port of 127.0.0.1 relaying to 127.0.0.1:`targetPort`. */
export async function startFlapProxy(targetPort) {
  const proxy = new FlapProxy(targetPort);
  await new Promise((resolve, reject) => {
    proxy.server.once("error", reject);
    proxy.server.listen(0, "127.0.0.1", () => {
      proxy.server.off("error", reject);
      resolve();
    });
  });
  proxy.port = proxy.server.address().port;
  return proxy;
}

export class FlapProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.port = undefined;
    /** Relayed connections: `{ client, upstream }`. */
    this.live = new Set();
    /** Server-side sockets kept open and silent by a flap, until `close()`. */
    this.silenced = new Set();
    /** How many client connections the flaps cut. */
    this.cut = 0;
    /** Whether the network is down (new connections are reset), and how many were. */
    this.down = false;
    this.refused = 0;
    /** Whether what servers send is held (see `hold`). */
    this.holding = false;
    this.server = createServer((client) => this.#relay(client));
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  #relay(client) {
    if (this.down) {
      this.refused++;
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host: "127.0.0.1", port: this.targetPort });
    const pair = { client, upstream };
    this.live.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Relayed by hand (not `pipe`) so a flap can cut one direction without the
    // stream machinery ending or destroying the other socket.
    const forward = (from, to) =>
      from.on("data", (chunk) => {
        if (this.live.has(pair) && !to.write(chunk)) {
          from.pause();
          to.once("drain", () => this.live.has(pair) && !(from === upstream && this.holding) && from.resume());
        }
      });
    forward(client, upstream);
    forward(upstream, client);
    if (this.holding) upstream.pause();
    // An ordinary close on either side (not a flap) ends the other side too.
    const finish = () => {
      if (!this.live.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on("end", finish).on("close", finish).on("error", finish);
    upstream.on("end", finish).on("close", finish).on("error", finish);
  }

  /**
   * The flap: every open client connection is closed at once, and its server-side
   * twin is left open and silent; new connections are reset for `downMs` (see the
   * file header). Returns how many connections were cut.
   */
  flap(downMs = 0) {
    this.down = downMs > 0;
    clearTimeout(this.downTimer);
    this.downTimer = setTimeout(() => (this.down = false), downMs);
    const pairs = [...this.live];
    this.live.clear();
    for (const { client, upstream } of pairs) {
      upstream.removeAllListeners("data");
      upstream.removeAllListeners("end");
      upstream.removeAllListeners("close");
      upstream.pause(); // nothing read: what the server sends stays in the buffers
      upstream.on("error", () => {}); // whatever happens to it later, stay quiet
      this.silenced.add(upstream);
      client.destroy();
    }
    this.cut += pairs.length;
    return pairs.length;
  }

  /** Holds what the servers send, on every connection, until `release()`. */
  hold() {
    this.holding = true;
    for (const { upstream } of this.live) upstream.pause();
  }

  /** Lets what the servers sent through, and what they send next. */
  release() {
    this.holding = false;
    for (const { upstream } of this.live) upstream.resume();
  }

  /** Stops listening and destroys every connection, silenced ones included. */
  async close() {
    clearTimeout(this.downTimer);
    for (const { client, upstream } of this.live) {
      client.destroy();
      upstream.destroy();
    }
    this.live.clear();
    for (const s of this.silenced) s.destroy();
    this.silenced.clear();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}
