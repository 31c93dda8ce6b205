// A minimal WebSocket client over a raw TCP connection, for tests that need what the
// official clients will not do: open an upgrade and inspect its status, stop reading,
// reset the connection without a close frame, or send any text.

import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";

/** The upgrade, masked text frames out, text frames in. */
export class RawWebSocket {
  /**
   * Opens `path` on `port`; resolves with `{ status, ws }`: the HTTP status of the
   * answer (0 when there was none within 10 s), and the socket once it is upgraded
   * (101). `answerPings`: reply `3` to each Engine.IO ping `2` as it is read, as a
   * client would.
   */
  static open(port, path, { answerPings = false } = {}) {
    return new Promise((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port });
      const ws = new RawWebSocket(socket, answerPings);
      let head = Buffer.alloc(0);
      let settled = false;
      const settle = (status) => {
        if (settled) return;
        settled = true;
        socket.off("data", onHead);
        if (status !== 101) socket.destroy();
        resolve({ status, ws: status === 101 ? ws : null });
      };
      const onHead = (chunk) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) return;
        const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head.toString("latin1"))?.[1] ?? 0);
        const rest = head.subarray(end + 4);
        if (status === 101) {
          socket.on("data", (c) => ws.#feed(c));
          if (rest.length) ws.#feed(rest);
        }
        settle(status);
      };
      socket.on("data", onHead);
      socket.on("error", () => settle(0));
      socket.on("close", () => {
        ws.closed = true;
        settle(0);
      });
      socket.setTimeout(10_000, () => settle(0));
      socket.once("connect", () => {
        socket.setTimeout(0);
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
            "Sec-WebSocket-Version: 13\r\n\r\n",
        );
      });
    });
  }

  constructor(socket, answerPings) {
    this.socket = socket;
    this.answerPings = answerPings;
    this.buf = Buffer.alloc(0);
    this.messages = [];
    this.waiters = [];
    this.closed = false;
  }

  #feed(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const opcode = this.buf[0] & 0x0f;
      const payload = this.buf.subarray(at, at + len).toString("utf8");
      this.buf = this.buf.subarray(at + len);
      if (opcode === 1) {
        if (this.answerPings && payload === "2") this.send("3");
        this.messages.push(payload);
        for (const w of this.waiters.splice(0)) w();
      }
    }
  }

  /** Sends one masked text frame. */
  send(text) {
    this.sendFrame(text);
  }

  /**
   * Sends one masked frame of `data` (a string or a Buffer): `opcode` 1 (text), 0 (a
   * continuation), 9 (ping), 10 (pong)…; `fin` false for a fragment that is not the
   * message's last. Resolves once the bytes are handed to the kernel.
   */
  sendFrame(data, { opcode = 1, fin = true } = {}) {
    const payload = Buffer.from(data);
    const mask = randomBytes(4);
    const first = (fin ? 0x80 : 0) | opcode;
    let head;
    if (payload.length < 126) {
      head = Buffer.from([first, 0x80 | payload.length]);
    } else if (payload.length < 65536) {
      head = Buffer.from([first, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    } else {
      head = Buffer.alloc(10);
      head[0] = first;
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve(false);
      this.socket.write(Buffer.concat([head, mask, payload]), (err) => resolve(!err));
    });
  }

  /** Resolves with the first message (from the start) matching `test`. */
  async next(test, ms = 10_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.find(test);
      if (found !== undefined) return found;
      if (this.closed) throw new Error("websocket closed");
      if (Date.now() > deadline) {
        const got = JSON.stringify(this.messages).slice(0, 200);
        throw new Error(`no message matching ${test} in ${ms} ms (got ${got})`);
      }
      await new Promise((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Stops reading: the loopback buffers fill, then the server's queue for it. */
  pause() {
    this.socket.pause();
  }

  /** Resets the TCP connection (RST, no close frame). */
  reset() {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }
}
