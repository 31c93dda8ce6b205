// A small Server-Sent Events client for the tests: `openSse(url, { headers })` reads a
// `text/event-stream` with `fetch` and parses it as the WHATWG HTML standard says
// ("Server-sent events", §9.2, "Interpreting an event stream"), so a test sees what a
// browser's `EventSource` would see, plus what `EventSource` hides (comments,
// heartbeats, the `retry:` value, whether the body ended cleanly). It never reconnects
// by itself: a test reconnects by opening a new stream with `Last-Event-ID`.
//
//   const s = await openSse(`${url}/sse?room=news`);
//   assert.equal(s.status, 200);                    // else s.body is the error answer
//   const [e] = await s.waitForEvents(1);            // { id, ownId, event, data }
//   JSON.parse(e.data);
//   s.close();
//
// API (all waits are bounded; a timeout rejects naming what was still missing):
// - `openSse(url, { headers, method, timeout })` → `SseStream`, once the response
//   headers arrived;
// - `SseStream`: `status`, `headers` (a `Headers`), `ok` (200 and `text/event-stream`),
//   `body` (the parsed JSON, or text, of any other answer), `events`, `comments`,
//   `retry`, `lastEventId`, `done`, `endError`; `waitForEvents(n, { event, timeout })`,
//   `waitForEvent(predicate, { timeout, what })`, `waitForComment(predicate, …)`,
//   `waitForEnd({ timeout })` (resolves with `endError`, `null` for a clean end),
//   `until(check, { timeout, what })` (any condition, re-checked after every chunk),
//   `close()`;
// - `SseParser`: the parser alone (`push(text)`, `end()`), for raw sockets;
// - `parseSse(text)`: a whole stream's text at once → `{ events, comments, retry }`.

/** Safety net for any single wait; never an assertion on speed. */
export const SSE_WAIT_MS = 10_000;

/**
 * An event as dispatched: `event` (the type, `message` when the block had no `event:`
 * field), `data` (the `data:` lines joined with `\n`), `id` (the stream's last event ID
 * after this block — what `MessageEvent.lastEventId` would be: it persists across
 * events) and `ownId` (the `id:` field of this very block, or `null` when it had none).
 * @typedef {{ id: string, ownId: string | null, event: string, data: string }} SseEvent
 */

/**
 * The WHATWG event-stream parser. Feed it decoded text in chunks of any size with
 * `push`; it calls `onEvent(SseEvent)`, `onComment(text)` (the line after `:`, one
 * leading space removed) and `onRetry(ms)` as lines complete. A line may end with CR,
 * LF or CRLF, also when CR and LF arrive in different chunks; a leading BOM is
 * dropped; `end()` discards an event whose blank line never came, as the standard does.
 */
export class SseParser {
  constructor({ onEvent = () => {}, onComment = () => {}, onRetry = () => {} } = {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    /** The last event ID string (persists across events, as in `EventSource`). */
    this.lastEventId = "";
    /** The reconnection time last set by `retry:`, or `null`. */
    this.retry = null;
    this.pending = "";
    this.start = true;
    this.skipLf = false;
    this.#reset();
    this.idBuffer = "";
  }

  #reset() {
    this.data = "";
    this.type = "";
    this.ownId = null;
  }

  /** Feeds decoded text. */
  push(text) {
    if (this.start && text.length > 0) {
      this.start = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let i = 0;
    if (this.skipLf && text.length > 0) {
      this.skipLf = false;
      if (text[0] === "\n") i = 1;
    }
    let buf = this.pending + text.slice(i);
    this.pending = "";
    let from = 0;
    for (let at = 0; at < buf.length; at++) {
      const c = buf[at];
      if (c !== "\r" && c !== "\n") continue;
      this.#line(buf.slice(from, at));
      if (c === "\r") {
        if (at + 1 < buf.length) {
          if (buf[at + 1] === "\n") at++;
        } else {
          this.skipLf = true; // a CRLF split across chunks
        }
      }
      from = at + 1;
    }
    this.pending = buf.slice(from);
  }

  /** The stream ended: a partial line and an undispatched event are dropped. */
  end() {
    this.pending = "";
    this.#reset();
  }

  #line(line) {
    if (line === "") return this.#dispatch();
    if (line[0] === ":") {
      const text = line.slice(1);
      this.onComment(text.startsWith(" ") ? text.slice(1) : text);
      return;
    }
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon !== -1) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.type = value;
        break;
      case "data":
        this.data += `${value}\n`;
        break;
      case "id":
        if (!value.includes("\0")) {
          this.idBuffer = value;
          this.ownId = value;
        }
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) {
          this.retry = Number(value);
          this.onRetry(this.retry);
        }
        break;
      default:
        break; // ignored, as the standard says
    }
  }

  #dispatch() {
    this.lastEventId = this.idBuffer;
    if (this.data === "") {
      this.#reset();
      return;
    }
    const event = {
      id: this.lastEventId,
      ownId: this.ownId,
      event: this.type === "" ? "message" : this.type,
      data: this.data.endsWith("\n") ? this.data.slice(0, -1) : this.data,
    };
    this.#reset();
    this.onEvent(event);
  }
}

/** Parses a whole stream's text: `{ events, comments, retry }`. */
export function parseSse(text) {
  const events = [];
  const comments = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c) });
  parser.push(text);
  parser.end();
  return { events, comments, retry: parser.retry };
}

/** An open (or refused) event stream; see the file comment. */
export class SseStream {
  constructor(res, controller) {
    this.status = res.status;
    this.headers = res.headers;
    const type = res.headers.get("content-type") ?? "";
    this.ok = res.status === 200 && type.split(";")[0].trim() === "text/event-stream";
    /** The answer's body (JSON parsed when possible) when it is not an event stream. */
    this.body = undefined;
    /** @type {SseEvent[]} every event dispatched so far, in order */
    this.events = [];
    /** Every comment line so far (heartbeats are empty strings). */
    this.comments = [];
    /** The body ended (cleanly, or with `endError`, or by `close()`). */
    this.done = false;
    /** Why reading the body failed (e.g. the connection was reset), if it did. */
    this.endError = null;
    this.closedByUs = false;
    this.controller = controller;
    this.waiters = new Set();
    this.parser = new SseParser({
      onEvent: (e) => this.events.push(e),
      onComment: (c) => this.comments.push(c),
    });
    this.res = res;
  }

  /** The reconnection time of the last `retry:` field, or `null`. */
  get retry() {
    return this.parser.retry;
  }

  /** The stream's last event ID (what a reconnect sends as `Last-Event-ID`). */
  get lastEventId() {
    return this.parser.lastEventId;
  }

  async read() {
    if (!this.ok) {
      const text = await this.res.text();
      try {
        this.body = JSON.parse(text);
      } catch {
        this.body = text;
      }
      this.done = true;
      return;
    }
    this.ended = (async () => {
      const decoder = new TextDecoder("utf-8");
      try {
        for await (const chunk of this.res.body) {
          this.parser.push(decoder.decode(chunk, { stream: true }));
          this.#wake();
        }
        this.parser.push(decoder.decode());
      } catch (err) {
        if (!this.closedByUs) this.endError = err;
      }
      this.parser.end();
      this.done = true;
      this.#wake();
    })();
  }

  #wake() {
    for (const w of this.waiters) w();
  }

  /**
   * Resolves with `check()`'s first truthy value, checked now and after every chunk;
   * rejects after `timeout` ms, or when the body ends first (naming `what`).
   */
  until(check, { timeout = SSE_WAIT_MS, what = "a condition" } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const waiter = () => {
        let value;
        try {
          value = check();
        } catch (err) {
          finish();
          return reject(err);
        }
        if (value) {
          finish();
          resolve(value);
        } else if (this.done) {
          finish();
          reject(new Error(`the stream ended (${this.endError?.message ?? "cleanly"}) before ${what}; ${this.describe()}`));
        }
      };
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; ${this.describe()}`));
      }, timeout);
      this.waiters.add(waiter);
      waiter();
    });
  }

  /**
   * Resolves with the first `n` events (of type `event` when given, others skipped)
   * once they arrived.
   */
  waitForEvents(n, { event, timeout } = {}) {
    const pick = () => (event === undefined ? this.events : this.events.filter((e) => e.event === event));
    return this.until(() => (pick().length >= n ? pick().slice(0, n) : null), {
      timeout,
      what: `${n} ${event === undefined ? "" : `"${event}" `}events`,
    });
  }

  /** Resolves with the first event that `predicate` accepts. */
  waitForEvent(predicate, { timeout, what = "a matching event" } = {}) {
    return this.until(() => this.events.find(predicate), { timeout, what });
  }

  /** Resolves with the first comment that `predicate` accepts. */
  waitForComment(predicate, { timeout, what = "a matching comment" } = {}) {
    return this.until(() => this.comments.find(predicate), { timeout, what });
  }

  /**
   * Resolves once the body ended (the server closed the stream), with `endError`
   * (`null` when it ended cleanly); rejects after `timeout`.
   */
  waitForEnd({ timeout = SSE_WAIT_MS } = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeout} ms waiting for the stream to end; ${this.describe()}`));
      }, timeout);
      const waiter = () => {
        if (!this.done) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(this.endError);
      };
      this.waiters.add(waiter);
      waiter();
    });
  }

  /** Closes the stream from the client side (as `EventSource.close()`). */
  close() {
    if (this.done) return;
    this.closedByUs = true;
    this.controller.abort();
  }

  /** A short account of what arrived, for failure messages. */
  describe() {
    const last = this.events.slice(-3).map((e) => `${e.event} ${e.data.slice(0, 80)}`);
    return `${this.events.length} events so far (last: ${JSON.stringify(last)}), done: ${this.done}`;
  }
}

/**
 * `GET url` as an `EventSource` would send it (`Accept: text/event-stream`,
 * `Cache-Control: no-cache`, plus `headers`, e.g. `last-event-id` or `authorization`).
 * Resolves with an `SseStream` once the response headers arrived (within `timeout`);
 * a refusal's body is read before resolving (`stream.body`), an event stream is read
 * in the background from then on.
 */
export async function openSse(url, { headers = {}, method = "GET", timeout = SSE_WAIT_MS } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${timeout} ms`)), timeout);
  let res;
  try {
    res = await fetch(url, {
      method,
      headers: { accept: "text/event-stream", "cache-control": "no-cache", ...headers },
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
  const stream = new SseStream(res, controller);
  await stream.read();
  return stream;
}
