#!/usr/bin/env node
// The Node.js reference for the conformance tests (tests/conformance): engine.io 6.6 and
// socket.io 4.8 set up exactly as the fixtures of the official Engine.IO v4 and Socket.IO
// v5 test suites, i.e. as `protocol_fixture engineio|socketio` is documented to behave
// (crates/cluster/examples/protocol_fixture/README.md). `run-against-node` beside this
// directory points the conformance tests at it, so every test is checked against Node.js.
// The `cluster` mode is not here: tests/interop/cluster/node-server.mjs implements it.
//
//   node server.mjs <engineio|socketio> [--port 0] [--host 127.0.0.1]
//
// Prints `listening on HOST:PORT` on stdout once bound, as the fixture does; exits 0 on
// SIGTERM/SIGINT. Packages come from tests/interop/node_modules (`npm ci` there).

import { createServer } from "node:http";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

// This directory has no node_modules of its own: resolve from the interop tests' install,
// and engine.io from socket.io's own location, so that it is the engine socket.io runs on.
const require = createRequire(new URL("../../interop/package.json", import.meta.url));
const { Server } = require("socket.io");
const engineIo = createRequire(require.resolve("socket.io"))("engine.io");

/** Settings both official suites demand of their fixture (the Rust fixture's too). */
const SUITE_SETTINGS = {
  pingInterval: 300,
  pingTimeout: 200,
  maxHttpBufferSize: 1e6,
  cors: { origin: "*" },
  // Every fixture mode refuses a handshake carrying this header (Node's allowRequest),
  // so that tests can reach the Forbidden answer (code 4, HTTP 403).
  allowRequest: (req, callback) => callback(null, req.headers["x-conformance-deny"] !== "1"),
};

/** Socket.IO's connect timeout in the Socket.IO suite's fixture. */
const CONNECT_TIMEOUT_MS = 1000;

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: "string", default: "3000" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
const mode = positionals[0];

const httpServer = createServer();

if (mode === "engineio") {
  // The Engine.IO suite's fixture: every message echoed, text as text, binary as binary.
  const engine = engineIo.attach(httpServer, { ...SUITE_SETTINGS, path: "/engine.io/" });
  engine.on("connection", (socket) => {
    socket.on("message", (data) => socket.send(data));
  });
} else if (mode === "socketio") {
  // The Socket.IO suite's fixture; connection state recovery stays off (the default).
  const io = new Server(httpServer, {
    ...SUITE_SETTINGS,
    path: "/socket.io/",
    connectTimeout: CONNECT_TIMEOUT_MS,
  });
  io.on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("message-with-ack", (...args) => {
      const ack = args.pop();
      ack(...args);
    });
  });
  io.of("/custom").on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
  });
} else {
  process.stderr.write(`usage: server.mjs <engineio|socketio> [--port P] [--host H]\n`);
  process.exit(64);
}

httpServer.listen(Number(opts.port), opts.host, () => {
  const { address, port } = httpServer.address();
  process.stdout.write(`listening on ${address}:${port}\n`);
});

// Nothing to drain: the clients are tests, and the script stops the server after them.
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
