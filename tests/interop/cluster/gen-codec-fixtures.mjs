// Generates crates/protocol/tests/fixtures/cluster-codec.json: the exact bytes the Node
// Socket.IO Redis adapters put on the wire, for the Rust cluster codecs to match.
//
//   cd tests/interop && node cluster/gen-codec-fixtures.mjs
//
// Every message comes from the real npm packages: notepack.io and @msgpack/msgpack for
// plain values, and the real RedisAdapter, redis-emitter and redis-streams-adapter
// classes driven through a fake Redis client that records what they publish (no Redis
// server). Randomness (uids, request ids) and timers are stubbed while generating, so
// the output is deterministic; node/cluster-codec-fixtures.test.mjs regenerates it in
// memory and compares it with the committed file.
//
// Formats used in the file:
// - bytes: lowercase hex, or {len, head, fnv1a64} (first 64 bytes + FNV-1a 64 of all)
//   when longer than 4096 bytes;
// - "tagged" values (MessagePack level): ["nil"], ["undef"], ["bool", b],
//   ["num", <f64 bits as hex>], ["str", s], ["str_repeat", unit, n], ["bin", hex],
//   ["bin_repeat", hex, n], ["arr", [..]], ["arr_repeat", v, n], ["obj", [[k, v], ..]],
//   ["ext", type, hex];
// - packets: {type, nsp, id, data (JSON with {"_placeholder":true,"num":i}),
//   attachments: [hex]}, the form switchboard_protocol::socketio::Packet uses.

import { createRequire } from "node:module";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const require = createRequire(import.meta.url);
const crypto = require("node:crypto");
const notepack = require("notepack.io");
const msgpack = require("@msgpack/msgpack");
const { Encoder: ParserEncoder } = require("socket.io-parser");
const { RedisAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");
const streamsUtil = require("@socket.io/redis-streams-adapter/dist/util.js");

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE_PATH = path.resolve(here, "../../../crates/protocol/tests/fixtures/cluster-codec.json");

const PACKAGES = [
  "notepack.io",
  "@msgpack/msgpack",
  "@socket.io/redis-adapter",
  "@socket.io/redis-emitter",
  "@socket.io/redis-streams-adapter",
  "socket.io-adapter",
  "socket.io-parser",
];

// ---------------------------------------------------------------------------------
// Describing values

const BIG = 4096;

function fnv1a64(buf) {
  let h = 0xcbf29ce484222325n;
  for (const b of buf) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

function bytes(buf) {
  buf = Buffer.from(buf);
  if (buf.length <= BIG) return buf.toString("hex");
  return { len: buf.length, head: buf.subarray(0, 64).toString("hex"), fnv1a64: fnv1a64(buf) };
}

function f64(n) {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b.toString("hex");
}

/** The tagged description of a JavaScript value. */
function tag(v) {
  if (v === undefined) return ["undef"];
  if (v === null) return ["nil"];
  switch (typeof v) {
    case "boolean":
      return ["bool", v];
    case "number":
      return ["num", f64(v)];
    case "string":
      return ["str", v];
  }
  if (v instanceof Uint8Array) return ["bin", Buffer.from(v).toString("hex")];
  if (v instanceof Date || v instanceof msgpack.ExtData) {
    const enc = Buffer.from(msgpack.encode(v));
    const start = enc[0] >= 0xd4 && enc[0] <= 0xd8 ? 2 : enc[0] === 0xc7 ? 3 : enc[0] === 0xc8 ? 4 : 6;
    return ["ext", enc.readInt8(start - 1), enc.subarray(start).toString("hex")];
  }
  if (Array.isArray(v)) return ["arr", v.map(tag)];
  return ["obj", Object.keys(v).map((k) => [k, tag(v[k])])];
}

/** JSON with placeholders + attachments, as socket.io-parser deconstructs a packet. */
function deconstruct(data) {
  const attachments = [];
  const walk = (v) => {
    if (v instanceof Uint8Array) {
      attachments.push(Buffer.from(v).toString("hex"));
      return { _placeholder: true, num: attachments.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") {
      const out = {};
      for (const k of Object.keys(v)) if (v[k] !== undefined) out[k] = walk(v[k]);
      return out;
    }
    return v;
  };
  const json = data === undefined ? null : walk(data);
  return { json, attachments };
}

function packetDesc({ type, nsp, id, data }) {
  const { json, attachments } = deconstruct(data);
  return { type, nsp, id: id ?? null, data: json, attachments };
}

function optsDesc({ rooms = [], except = [], flags = {} }) {
  const known = ["volatile", "compress", "local", "broadcast", "binary", "timeout"];
  const f = {};
  for (const k of known) if (flags[k] !== undefined) f[k] = flags[k];
  return { rooms: [...rooms].map(String), except: [...except].map(String), flags: f };
}

function socketDesc(s) {
  const { sessionStore, ...handshake } = s.handshake;
  return { id: s.id, handshake, rooms: [...s.rooms], data: tag(s.data) };
}

// ---------------------------------------------------------------------------------
// Determinism and fakes

function installDeterminism() {
  const origRandomBytes = crypto.randomBytes;
  const origSetTimeout = globalThis.setTimeout;
  let state = 0x5eed1234;
  const next = () => {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state & 0xff;
  };
  crypto.randomBytes = (n, cb) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = next();
    if (cb) return void process.nextTick(cb, null, b);
    return b;
  };
  // Request timeouts and ack clean-ups never fire while generating.
  globalThis.setTimeout = () => ({ refresh() {}, unref() {}, ref() {}, hasRef: () => false });
  return () => {
    crypto.randomBytes = origRandomBytes;
    globalThis.setTimeout = origSetTimeout;
  };
}

/** An ioredis-like client recording what is published, added and set. */
class FakeRedis {
  constructor(log = []) {
    this.log = log;
    this.options = { lazyConnect: false };
  }
  duplicate() {
    return new FakeRedis(this.log);
  }
  on() {
    return this;
  }
  off() {
    return this;
  }
  psubscribe() {}
  punsubscribe() {}
  subscribe() {}
  unsubscribe() {}
  disconnect() {}
  publish(channel, payload) {
    this.log.push({ op: "publish", channel: String(channel), payload: Buffer.from(payload) });
    return Promise.resolve(1);
  }
  xadd(args) {
    const [stream, , , , , ...kv] = args;
    const fields = [];
    for (let i = 0; i < kv.length; i += 2) fields.push([String(kv[i]), String(kv[i + 1])]);
    this.log.push({ op: "xadd", stream, fields });
    return Promise.resolve("1700000000000-0");
  }
  xread() {
    return new Promise(() => {});
  }
  set(key, value, px, ms) {
    this.log.push({ op: "set", key, value, px, ms });
    return Promise.resolve("OK");
  }
  send_command(cmd, args, cb) {
    // PUBSUB NUMSUB <channel>: pretend two servers listen.
    cb(null, [args[1], 2]);
  }
}

function fakeSocket(id, rooms, data, handshake) {
  return {
    id,
    rooms: new Set(rooms),
    data,
    handshake,
    acks: new Map(),
    client: { writeToEngine() {} },
    join() {},
    leave() {},
    disconnect() {},
  };
}

function fakeNsp(name, { onServerSideEmit = () => {}, recovery = false } = {}) {
  return {
    name,
    server: {
      encoder: new ParserEncoder(),
      opts: recovery ? { connectionStateRecovery: { maxDisconnectionDuration: 120000 } } : {},
    },
    sockets: new Map(),
    _ids: 0,
    _onServerSideEmit: onServerSideEmit,
  };
}

function addSocket(adapter, socket) {
  adapter.nsp.sockets.set(socket.id, socket);
  adapter.addAll(socket.id, socket.rooms);
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Runs `fn` and returns what it made the fake client record. */
async function capture(log, fn) {
  const start = log.length;
  const ret = fn();
  if (ret && typeof ret.catch === "function") ret.catch(() => {});
  for (let i = 0; i < 5; i++) await flush();
  return log.slice(start);
}

const HANDSHAKE = {
  headers: { host: "localhost:3000", "user-agent": "node-XMLHttpRequest", accept: "*/*" },
  time: "Tue Jan 02 2024 10:00:00 GMT+0000 (Coordinated Universal Time)",
  address: "::ffff:127.0.0.1",
  xdomain: false,
  secure: false,
  issued: 1704189600000,
  url: "/socket.io/?EIO=4&transport=polling&t=OnR1a2b",
  query: { EIO: "4", transport: "polling", t: "OnR1a2b" },
  auth: { token: "abc" },
  sessionStore: { not: "serialized" },
};

// Awkward strings and numbers used across messages.
const UNICODE = "héllo wörld 👋 日本語 \u0000\b\f\r\u001f\u007f \"quoted\" back\\slash \n\t\u2028 end";
const SAFE_NUMBERS = [0, 1, -1, 127, 128, -33, 255, 65536, 4294967295, 4294967296, -2147483649, 9007199254740991, -9007199254740991, 1.5, -0.25, 0.1, 1e21];

// ---------------------------------------------------------------------------------
// Plain values

function valueCases() {
  const cases = [];
  const add = (name, value, desc = tag(value)) => cases.push({ name, value, desc });
  add("nil", null);
  add("undefined", undefined);
  add("true", true);
  add("false", false);
  for (const n of [
    0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 9007199254740991, 9007199254740992,
    2 ** 60, 2 ** 63, 2 ** 64, 2 ** 70, 1e21, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31),
    -(2 ** 31) - 1, -9007199254740991, -(2 ** 63), -(2 ** 64), -(2 ** 70),
  ]) {
    add(`int ${n}`, n);
  }
  for (const n of [0.5, -0.25, 1.1, 0.1, -0, 5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 1e-7, 123.456, NaN, Infinity, -Infinity]) {
    add(`float ${n}`, n);
  }
  add("empty string", "");
  add("fixstr 31", "a".repeat(31));
  add("str8 32", "a".repeat(32));
  add("str8 255", "b".repeat(255));
  add("str16 256", "c".repeat(256));
  add("str16 2-byte chars", "é".repeat(100));
  add("str16 65535", "d".repeat(65535), ["str_repeat", "d", 65535]);
  add("str32 65536", "e".repeat(65536), ["str_repeat", "e", 65536]);
  add("str32 4-byte chars", "👋".repeat(20000), ["str_repeat", "👋", 20000]);
  add("unicode", UNICODE);
  add("empty bin", Buffer.alloc(0));
  add("bin8", Buffer.from([0, 1, 2, 254, 255]));
  add("bin16", Buffer.alloc(256, 0xab), ["bin_repeat", "ab", 256]);
  add("bin32", Buffer.alloc(65536, 7), ["bin_repeat", "07", 65536]);
  add("uint8array", new Uint8Array([9, 8, 7]));
  add("empty array", []);
  add("fixarray 15", Array.from({ length: 15 }, (_, i) => i));
  add("array16 16", Array.from({ length: 16 }, (_, i) => `s${i}`));
  add("array32", new Array(65536).fill(null), ["arr_repeat", ["nil"], 65536]);
  add("empty map", {});
  add("fixmap 15", Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i])));
  add("map16 16", Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`key${i}`, [i, `v${i}`]])));
  add("integer-like keys", { b: 1, 10: 2, a: 3, 2: 4, "01": 5 });
  add("nested", { a: { b: { c: [1, [2, [3, { d: null }]]] } }, "é": [true, false], "": "" });
  add("timestamp32", new Date(1700000000000));
  add("timestamp64", new Date(1700000000123));
  add("mixed array", [null, true, -1, 1.5, "x", Buffer.from([1]), [], {}]);

  return cases.map(({ name, value, desc }) => {
    const np = notepack.encode(value);
    const mp = Buffer.from(msgpack.encode(value));
    return {
      name,
      value: desc,
      notepack: bytes(np),
      msgpack: bytes(mp),
      // What each Node decoder makes of those bytes (notepack wraps integers beyond 2^64).
      notepack_decoded: summarize(notepack.decode(np)),
      msgpack_decoded: summarize(msgpack.decode(mp)),
    };
  });

  function summarize(decoded) {
    const d = tag(decoded);
    return JSON.stringify(d).length > BIG ? null : d;
  }
}

/** JSON text a client could send, parsed by Node and re-encoded. */
function jsonTextCases() {
  const texts = [
    `{"b":1,"10":2,"a":3,"2":4,"4294967295":5,"4294967294":6}`,
    `["ev",{"\\u00e9":"\\ud83d\\udc4b","n":-0,"f":1.0,"e":2.5e3,"nested":{"z":1,"0":0}}]`,
    `[0.1,0.2,0.30000000000000004,1e-7,123456789,-42]`,
  ];
  return texts.map((text) => {
    const value = JSON.parse(text);
    return {
      text,
      notepack: bytes(notepack.encode(value)),
      msgpack: bytes(msgpack.encode(value)),
      json_stringify: JSON.stringify(value),
    };
  });
}

// ---------------------------------------------------------------------------------
// @socket.io/redis-adapter and @socket.io/redis-emitter

async function redisAdapterCases() {
  const log = [];
  const pub = new FakeRedis(log);
  const sub = new FakeRedis([]);
  const a = new RedisAdapter(fakeNsp("/"), pub, sub, { requestsTimeout: 1 });
  const chat = new RedisAdapter(fakeNsp("/chat"), pub, sub, { requestsTimeout: 1 });
  const broadcasts = [];
  const requests = [];
  const responses = [];

  async function broadcast(name, adapter, packet, opts) {
    const expect = {
      uid: adapter.uid,
      packet: packetDesc({ ...packet, nsp: adapter.nsp.name }),
      opts: optsDesc(opts),
    };
    const [rec] = await capture(log, () =>
      adapter.broadcast(packet, { rooms: new Set(opts.rooms ?? []), except: new Set(opts.except ?? []), flags: opts.flags ?? {} }),
    );
    broadcasts.push({ name, source: "adapter", channel: rec.channel, hex: bytes(rec.payload), expect });
  }

  await broadcast("event to namespace", a, { type: 2, data: ["chat", UNICODE, ...SAFE_NUMBERS.filter((n) => n !== 1e21)] }, {});
  await broadcast("event to one room", chat, { type: 2, data: ["msg", { from: "ann", at: 1704189600000, tags: [] }] }, { rooms: ["room1"] });
  await broadcast(
    "rooms, except and flags",
    chat,
    { type: 2, data: ["ev", [], {}, [[]], null, true] },
    { rooms: ["r1", "r2"], except: ["sid1"], flags: { volatile: true, compress: false, timeout: 5000 } },
  );
  await broadcast(
    "binary event",
    a,
    { type: 2, data: ["file", Buffer.from([0, 1, 2, 255]), { thumb: Buffer.alloc(300, 7), name: "x.png" }, [Buffer.alloc(0)]] },
    { except: ["sid2"] },
  );
  await broadcast(
    "long strings and many keys",
    a,
    {
      type: 2,
      data: [
        "big",
        "s".repeat(300),
        "👋".repeat(16384), // 65536 bytes: the first str32
        Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`key${i}`, i * 1000])),
        Array.from({ length: 20 }, (_, i) => i - 10),
      ],
    },
    {},
  );

  async function request(name, fn, expect, { encodeOnly = false } = {}) {
    const recs = await capture(log, fn);
    const rec = recs.find((r) => r.op === "publish" && r.channel.startsWith("socket.io-request#"));
    if (!rec) throw new Error(`${name}: nothing published`);
    requests.push({ name, source: "adapter", channel: rec.channel, hex: bytes(rec.payload), encode_only: encodeOnly, expect: expect(rec.payload) });
  }
  const uid = a.uid;
  const reqId = (payload) => JSON.parse(payload.toString()).requestId;

  await request("allRooms", () => a.allRooms(), (p) => ({ uid, body: { kind: "AllRooms", request_id: reqId(p) } }));
  const filter = { rooms: new Set(["r1"]), except: new Set(["sid9"]), flags: {} };
  await request("fetchSockets", () => a.fetchSockets(filter), (p) => ({
    uid,
    body: { kind: "FetchSockets", request_id: reqId(p), opts: optsDesc({ rooms: ["r1"], except: ["sid9"] }) },
  }));
  await request("socketsJoin", () => a.addSockets(filter, ["room2", "room3"]), () => ({
    uid,
    body: { kind: "SocketsJoin", opts: optsDesc({ rooms: ["r1"], except: ["sid9"] }), rooms: ["room2", "room3"] },
  }));
  await request("socketsLeave", () => a.delSockets({ rooms: new Set(), except: new Set(), flags: {} }, ["room2"]), () => ({
    uid,
    body: { kind: "SocketsLeave", opts: optsDesc({}), rooms: ["room2"] },
  }));
  await request("disconnectSockets", () => a.disconnectSockets(filter, true), () => ({
    uid,
    body: { kind: "DisconnectSockets", opts: optsDesc({ rooms: ["r1"], except: ["sid9"] }), close: true },
  }));
  const sseArgs = ["event", 1, UNICODE, { three: [3, 3.5, -0.25, null, true, false] }, []];
  await request("serverSideEmit", () => a.serverSideEmit([...sseArgs]), () => ({
    uid,
    body: { kind: "ServerSideEmit", request_id: null, data: sseArgs.map(tag) },
  }));
  await request("serverSideEmit with ack", () => a.serverSideEmit(["ping", 42, () => {}]), (p) => ({
    uid,
    body: { kind: "ServerSideEmit", request_id: reqId(p), data: ["ping", 42].map(tag) },
  }));
  const oddArgs = ["numbers", 2 ** 60, 1e21, 5e-324, Number.MAX_VALUE, 1e-7, 0.000001, 123e-20, NaN, Infinity, Buffer.from([1, 2])];
  await request(
    "serverSideEmit with numbers JSON prints oddly, and a Buffer",
    () => a.serverSideEmit([...oddArgs]),
    () => ({ uid, body: { kind: "ServerSideEmit", request_id: null, data: oddArgs.map(tag) } }),
    { encodeOnly: true },
  );
  // Many doubles of every magnitude: JSON.stringify prints each with V8's shortest
  // round-trip digits and its positional/exponential switch, which the Rust writer must
  // reproduce.
  const floats = ["floats"];
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 300; i++) {
    const magnitude = 10 ** Math.floor(rnd() * 60 - 30);
    const sign = rnd() < 0.5 ? -1 : 1;
    floats.push(sign * rnd() * magnitude);
    const bits = Buffer.alloc(8);
    bits.writeUInt32BE(Math.floor(rnd() * 2 ** 32), 0);
    bits.writeUInt32BE(Math.floor(rnd() * 2 ** 32), 4);
    const any = bits.readDoubleBE(0);
    if (Number.isFinite(any)) floats.push(any);
  }
  // Exact midpoints between two shortest candidates: ECMA-262 prints the even one.
  for (let j = 0; j < 10; j++) floats.push(2 ** 49 + j * 12345 + 0.25, -(2 ** 49 + j * 54321 + 0.75));
  floats.push(591308287112042.25);
  await request(
    "serverSideEmit with many floats",
    () => a.serverSideEmit([...floats]),
    () => ({ uid, body: { kind: "ServerSideEmit", request_id: null, data: floats.map(tag) } }),
    { encodeOnly: true },
  );
  await request(
    "broadcast with ack",
    () => a.broadcastWithAck({ type: 2, data: ["question", Buffer.from("bin"), { n: 1 }] }, { rooms: new Set(["r1"]), except: new Set(), flags: { timeout: 5000 } }, () => {}, () => {}),
    (p) => ({
      uid,
      body: {
        kind: "Broadcast",
        request_id: notepack.decode(p).requestId,
        packet: packetDesc({ type: 2, nsp: "/", data: ["question", Buffer.from("bin"), { n: 1 }] }),
        opts: optsDesc({ rooms: ["r1"], flags: { timeout: 5000 } }),
      },
    }),
  );

  // Requests in the shapes adapters before 8.0 sent, published by hand as they did.
  const legacy = [
    ["sockets (7.x)", { uid: "old123", requestId: "rq1", type: 0, rooms: ["r1", "r2"] }, { kind: "Sockets", request_id: "rq1", rooms: ["r1", "r2"] }],
    ["allRooms (6.x, no uid)", { requestId: "rq2", type: 1 }, { kind: "AllRooms", request_id: "rq2" }],
    ["remoteJoin (7.x)", { uid: "old123", requestId: "rq3", type: 2, sid: "sidA", room: "roomA" }, { kind: "RemoteJoin", request_id: "rq3", sid: "sidA", room: "roomA" }],
    ["remoteLeave (7.x)", { uid: "old123", requestId: "rq4", type: 3, sid: "sidA", room: "roomA" }, { kind: "RemoteLeave", request_id: "rq4", sid: "sidA", room: "roomA" }],
    ["remoteDisconnect (7.x)", { uid: "old123", requestId: "rq5", type: 4, sid: "sidA", close: false }, { kind: "RemoteDisconnect", request_id: "rq5", sid: "sidA", close: false }],
  ];
  for (const [name, obj, body] of legacy) {
    const payload = JSON.stringify(obj);
    requests.push({ name, source: "legacy", channel: "socket.io-request#/#", hex: bytes(Buffer.from(payload)), encode_only: false, expect: { uid: obj.uid ?? null, body } });
  }

  // Responses, produced by a second node answering requests from `a`.
  const b = new RedisAdapter(
    fakeNsp("/", {
      onServerSideEmit(args) {
        const cb = args[args.length - 1];
        cb(args.length > 2 ? args[1] : undefined);
      },
    }),
    pub,
    sub,
  );
  addSocket(b, fakeSocket("sidB1", ["sidB1", "room1"], { user: "bob", score: 1.5, tags: ["a"] }, HANDSHAKE));
  addSocket(b, fakeSocket("sidB2", ["sidB2", "room1", "room2"], {}, { ...HANDSHAKE, auth: {}, query: {} }));
  const reqChannel = "socket.io-request#/#";

  async function respond(name, requestObj, requestType, expect, { raw } = {}) {
    const payload = raw ?? Buffer.from(JSON.stringify(requestObj));
    const recs = await capture(log, () => b.onrequest(reqChannel, payload));
    const pubs = recs.filter((r) => r.op === "publish");
    if (pubs.length === 0) throw new Error(`${name}: no response`);
    pubs.forEach((rec, i) => {
      responses.push({
        name: pubs.length > 1 ? `${name} #${i + 1}` : name,
        channel: rec.channel,
        hex: bytes(rec.payload),
        request_type: requestType,
        expect: expect[i],
      });
    });
  }

  await respond("sockets", { uid, requestId: "s1", type: 0, rooms: ["room1"] }, "Sockets", [
    { kind: "Sockets", request_id: "s1", sockets: ["sidB1", "sidB2"] },
  ]);
  await respond("allRooms", { uid, requestId: "s2", type: 1 }, "AllRooms", [
    { kind: "AllRooms", request_id: "s2", rooms: [...b.rooms.keys()] },
  ]);
  await respond("remoteJoin", { uid, requestId: "s3", type: 2, sid: "sidB1", room: "x" }, "RemoteJoin", [{ kind: "Done", request_id: "s3" }]);
  await respond("fetchSockets", { uid, requestId: "s4", type: 5, opts: { rooms: ["room1"], except: [] } }, "RemoteFetch", [
    {
      kind: "FetchSockets",
      request_id: "s4",
      sockets: [...b.nsp.sockets.values()].map(socketDesc),
    },
  ]);
  await respond("serverSideEmit ack", { uid: "other", requestId: "s5", type: 6, data: ["ev", { ok: true, n: [1, 2.5] }] }, "ServerSideEmit", [
    { kind: "ServerSideEmit", request_id: "s5", data: tag({ ok: true, n: [1, 2.5] }) },
  ]);
  await respond("serverSideEmit ack undefined", { uid: "other", requestId: "s6", type: 6, data: ["ev"] }, "ServerSideEmit", [
    { kind: "ServerSideEmit", request_id: "s6", data: ["undef"] },
  ]);
  {
    const raw = notepack.encode({
      uid: "other",
      requestId: "s7",
      type: 7,
      packet: { type: 2, data: ["question"], nsp: "/" },
      opts: { rooms: ["room1"], except: [], flags: { timeout: 1000 } },
    });
    await respond("broadcast client count", null, "Broadcast", [{ kind: "BroadcastClientCount", request_id: "s7", client_count: 2 }], { raw });
    const ackArg = { answer: 42, file: Buffer.from([1, 2, 3]), list: ["x"] };
    const ack = [...b.nsp.sockets.get("sidB1").acks.values()].at(-1);
    const recs = await capture(log, () => ack(ackArg));
    responses.push({
      name: "broadcast ack",
      channel: recs[0].channel,
      hex: bytes(recs[0].payload),
      request_type: "Broadcast",
      expect: { kind: "BroadcastAck", request_id: "s7", packet: tag(ackArg) },
    });
    const ack2 = [...b.nsp.sockets.get("sidB2").acks.values()].at(-1);
    const recs2 = await capture(log, () => ack2(undefined));
    responses.push({
      name: "broadcast ack undefined",
      channel: recs2[0].channel,
      hex: bytes(recs2[0].payload),
      request_type: "Broadcast",
      expect: { kind: "BroadcastAck", request_id: "s7", packet: ["undef"] },
    });
  }

  // The emitter, whose uid is "emitter".
  const emitter = new Emitter(pub);
  async function emit(name, fn, expect, { decodeOnly = false, kind = "broadcast" } = {}) {
    const [rec] = await capture(log, fn);
    const entry = { name, source: "emitter", channel: rec.channel, hex: bytes(rec.payload), expect };
    if (kind === "broadcast") broadcasts.push({ ...entry, decode_only: decodeOnly });
    else requests.push({ ...entry, encode_only: false });
  }
  // Emitters write opts as {rooms, flags, except}: decode only.
  await emit("emit", () => emitter.emit("hello", "world", 1, { a: [1, 2] }), {
    uid: "emitter",
    packet: packetDesc({ type: 2, nsp: "/", data: ["hello", "world", 1, { a: [1, 2] }] }),
    opts: optsDesc({}),
  }, { decodeOnly: true });
  await emit(
    "emit to rooms with flags and binary",
    () => emitter.of("/admin").to(["r1", "r2"]).except("r3").volatile.compress(true).emit("ev", Buffer.from([5, 6])),
    {
      uid: "emitter",
      packet: packetDesc({ type: 2, nsp: "/admin", data: ["ev", Buffer.from([5, 6])] }),
      opts: optsDesc({ rooms: ["r1", "r2"], except: ["r3"], flags: { volatile: true, compress: true } }),
    },
    { decodeOnly: true },
  );
  await emit("emit to a numeric room", () => emitter.to(42).emit("n"), {
    uid: "emitter",
    packet: packetDesc({ type: 2, nsp: "/", data: ["n"] }),
    opts: optsDesc({ rooms: ["42"] }),
  }, { decodeOnly: true });
  await emit("socketsJoin", () => emitter.socketsJoin("room9"), { uid: null, body: { kind: "SocketsJoin", opts: optsDesc({}), rooms: ["room9"] } }, { kind: "request" });
  await emit("socketsLeave", () => emitter.in("r1").socketsLeave(["a", "b"]), {
    uid: null,
    body: { kind: "SocketsLeave", opts: optsDesc({ rooms: ["r1"] }), rooms: ["a", "b"] },
  }, { kind: "request" });
  await emit("disconnectSockets", () => emitter.except("vip").disconnectSockets(true), {
    uid: null,
    body: { kind: "DisconnectSockets", opts: optsDesc({ except: ["vip"] }), close: true },
  }, { kind: "request" });
  await emit("serverSideEmit", () => emitter.serverSideEmit("ping", 1, "two"), {
    uid: "emitter",
    body: { kind: "ServerSideEmit", request_id: null, data: ["ping", 1, "two"].map(tag) },
  }, { kind: "request" });

  return { broadcasts, requests, responses };
}

// ---------------------------------------------------------------------------------
// @socket.io/redis-streams-adapter

async function streamsCases() {
  const log = [];
  const client = new FakeRedis(log);
  const responder = { onServerSideEmit: null };
  const makeAdapter = createStreamsAdapter(client);
  const nsp = fakeNsp("/", { recovery: true, onServerSideEmit: (args) => responder.onServerSideEmit?.(args) });
  const a = makeAdapter(nsp);
  const chat = makeAdapter(fakeNsp("/chat", { recovery: true }));
  await flush();
  addSocket(a, fakeSocket("sidS1", ["sidS1", "room1"], { user: "sue", bin: Buffer.from([7]) }, HANDSHAKE));
  addSocket(a, fakeSocket("sidS2", ["sidS2"], { plain: true }, { ...HANDSHAKE, auth: {} }));

  const entries = [];
  const pubsub = [];
  const sessions = [];

  function record(name, recs, expect) {
    for (const rec of recs) {
      if (rec.op === "xadd") entries.push({ name, stream: rec.stream, fields: rec.fields, expect });
      else if (rec.op === "publish") pubsub.push({ name, channel: rec.channel, hex: bytes(rec.payload), expect });
      else if (rec.op === "set") sessions.push({ name, key: rec.key, stored: rec.value, px: rec.ms, expect });
    }
    if (recs.length !== 1) throw new Error(`${name}: expected one record, got ${recs.length}`);
  }
  const msg = (adapter, kind, body = {}) => ({ uid: adapter.uid, nsp: adapter.nsp.name, body: { kind, ...body } });
  const opts = (o) => ({ rooms: new Set(o.rooms ?? []), except: new Set(o.except ?? []), flags: o.flags ?? {} });

  // Durable messages (XADD).
  for (const [name, adapter, packet, o] of [
    ["broadcast", a, { type: 2, data: ["chat", UNICODE, ...SAFE_NUMBERS, { nested: { deep: [true, null] } }, []] }, {}],
    ["broadcast to rooms with flags", chat, { type: 2, data: ["msg", "x".repeat(300)] }, { rooms: ["r1", "r2"], except: ["sid1"], flags: { volatile: true, compress: true } }],
    ["broadcast binary", a, { type: 2, data: ["file", Buffer.from([0, 1, 2, 255]), { big: Buffer.alloc(300, 1), n: -1.5 }] }, { rooms: ["room1"] }],
  ]) {
    const expect = msg(adapter, "Broadcast", {
      packet: packetDesc({ ...packet, nsp: adapter.nsp.name }),
      request_id: null,
      opts: optsDesc(o),
    });
    record(name, await capture(log, () => adapter.broadcast(packet, opts(o))), expect);
  }
  record("socketsJoin", await capture(log, () => a.addSockets(opts({ rooms: ["room1"] }), ["room2"])), msg(a, "SocketsJoin", { opts: optsDesc({ rooms: ["room1"] }), rooms: ["room2"] }));
  record("socketsLeave", await capture(log, () => a.delSockets(opts({ except: ["sidS2"] }), ["room1", "room3"])), msg(a, "SocketsLeave", { opts: optsDesc({ except: ["sidS2"] }), rooms: ["room1", "room3"] }));
  record("disconnectSockets", await capture(log, () => a.disconnectSockets(opts({ rooms: ["room9"] }), false)), msg(a, "DisconnectSockets", { opts: optsDesc({ rooms: ["room9"] }), close: false }));
  record("initial heartbeat", await capture(log, () => a.publish({ type: 1 })), msg(a, "InitialHeartbeat"));
  record("heartbeat", await capture(log, () => a.publish({ type: 2 })), msg(a, "Heartbeat"));
  record("adapter close", await capture(log, () => a.publish({ type: 13 })), msg(a, "AdapterClose"));

  // Ephemeral messages (PUBLISH, whole message msgpack'd).
  const sentRequestId = (recs) => msgpack.decode(recs[0].payload).data.requestId;
  {
    const recs = await capture(log, () =>
      a.broadcastWithAck({ type: 2, data: ["question", 1] }, opts({ rooms: ["room1"], flags: { timeout: 5000 } }), () => {}, () => {}),
    );
    record("broadcast with ack", recs, msg(a, "Broadcast", {
      packet: packetDesc({ type: 2, nsp: "/", data: ["question", 1] }),
      request_id: sentRequestId(recs),
      opts: optsDesc({ rooms: ["room1"], flags: { timeout: 5000 } }),
    }));
  }
  {
    const recs = await capture(log, () => a.fetchSockets(opts({ rooms: ["room1"], flags: { timeout: 1000 } })));
    record("fetchSockets", recs, msg(a, "FetchSockets", { opts: optsDesc({ rooms: ["room1"], flags: { timeout: 1000 } }), request_id: sentRequestId(recs) }));
  }
  const sseArgs = ["event", UNICODE, Buffer.from([1, 2, 3]), { n: -1.5 }];
  record("serverSideEmit", await capture(log, () => a.serverSideEmit([...sseArgs])), msg(a, "ServerSideEmit", { request_id: null, packet: sseArgs.map(tag) }));
  {
    const recs = await capture(log, () => a.serverSideEmit(["ping", () => {}]));
    record("serverSideEmit with ack", recs, msg(a, "ServerSideEmit", { request_id: sentRequestId(recs), packet: [tag("ping")] }));
  }

  // Responses from `a` to a request by node "requester1" (PUBLISH on its private channel).
  const from = { uid: "requester1", nsp: "/" };
  record(
    "fetchSockets response",
    await capture(log, () => a.onMessage({ ...from, type: 7, data: { opts: { rooms: ["room1"], except: [] }, requestId: "f1" } })),
    msg(a, "FetchSocketsResponse", { request_id: "f1", sockets: [socketDesc(nsp.sockets.get("sidS1"))] }),
  );
  responder.onServerSideEmit = (args) => args[args.length - 1](Buffer.from([4, 2]));
  record(
    "serverSideEmit response",
    await capture(log, () => a.onMessage({ ...from, type: 9, data: { requestId: "e1", packet: ["ev"] } })),
    msg(a, "ServerSideEmitResponse", { request_id: "e1", packet: tag(Buffer.from([4, 2])) }),
  );
  responder.onServerSideEmit = (args) => args[args.length - 1]();
  record(
    "serverSideEmit response undefined",
    await capture(log, () => a.onMessage({ ...from, type: 9, data: { requestId: "e2", packet: ["ev"] } })),
    msg(a, "ServerSideEmitResponse", { request_id: "e2", packet: ["nil"] }),
  );
  record(
    "broadcast client count",
    await capture(log, () =>
      a.onMessage({ ...from, type: 3, data: { packet: { type: 2, data: ["q"] }, requestId: "b1", opts: { rooms: [], except: ["sidS2"], flags: { timeout: 1000 } } } }),
    ),
    msg(a, "BroadcastClientCount", { request_id: "b1", client_count: 1 }),
  );
  record(
    "broadcast ack",
    await capture(log, () => [...nsp.sockets.get("sidS1").acks.values()].at(-1)({ ok: 1, list: [null] })),
    msg(a, "BroadcastAck", { request_id: "b1", packet: tag({ ok: 1, list: [null] }) }),
  );

  // Sessions (SET sio:session:<pid>).
  record(
    "session",
    await capture(log, () => a.persistSession({ sid: "sidS1", pid: "pid-1", rooms: ["sidS1", "room1"], data: { user: "sue", n: 3 } })),
    { sid: "sidS1", pid: "pid-1", rooms: ["sidS1", "room1"], data: tag({ user: "sue", n: 3 }), extra: [] },
  );
  record(
    "session with binary data and an extra field",
    await capture(log, () =>
      a.persistSession({ sid: "sidS2", pid: "pid-2", rooms: [], data: { avatar: Buffer.from([1, 2]), "ü": 1.5 }, offset: "1700000000000-3" }),
    ),
    { sid: "sidS2", pid: "pid-2", rooms: [], data: tag({ avatar: Buffer.from([1, 2]), "ü": 1.5 }), extra: [["offset", tag("1700000000000-3")]] },
  );

  const streamNames = [];
  for (const count of [1, 2, 3, 7]) {
    for (const name of ["/", "/chat", "/admin", "/ünïcode", "/日本", "/" + "x".repeat(40), "/a-very-long-namespace-name-that-overflows"]) {
      const hash = streamsUtil.hashCode(name);
      const stream = count === 1 ? "socket.io" : "socket.io-" + (hash % count);
      streamNames.push({ nsp: name, count, stream });
    }
  }

  return { entries, pubsub, sessions, stream_names: streamNames };
}

// ---------------------------------------------------------------------------------

function packageVersion(name) {
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8"));
      if (pkg.name === name) return pkg.version;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json for ${name}`);
    dir = parent;
  }
}

export async function generateFixtures() {
  const restore = installDeterminism();
  try {
    const packages = {};
    for (const name of PACKAGES) packages[name] = packageVersion(name);
    const redis = await redisAdapterCases();
    const streams = await streamsCases();
    return {
      about: "Generated by tests/interop/cluster/gen-codec-fixtures.mjs from the npm packages below; do not edit by hand.",
      packages,
      values: valueCases(),
      json_texts: jsonTextCases(),
      redis_adapter: redis,
      streams,
    };
  } finally {
    restore();
  }
}

export function serialize(fixtures) {
  return JSON.stringify(fixtures, null, 1) + "\n";
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fixtures = await generateFixtures();
  writeFileSync(FIXTURE_PATH, serialize(fixtures));
  console.log(`wrote ${FIXTURE_PATH}`);
  // Timers and pending XREADs of the fake clients must not keep the process alive.
  process.exit(0);
}
