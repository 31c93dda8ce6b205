// The benchmark workload served by Node.js Socket.IO 4.8 with default settings.
//
// Same contract as `protocol_fixture cluster` for what the benchmarks use, namespace "/":
// `join` (room) joins and acks true; `broadcast` (room, event, ...args) emits `event`
// with `args` to the room and acks true; `message-with-ack` (...args) acks the same args.
//
// Usage: node server.js [--port N] [--host H]; prints exactly `listening on HOST:PORT`
// once bound and exits on SIGINT/SIGTERM.
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = { host: "127.0.0.1", port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === "--port") opts.port = Number(argv[i + 1]);
    else if (argv[i] === "--host") opts.host = argv[i + 1];
    else console.error(`ignoring unknown argument ${argv[i]}`);
  }
  return opts;
}

// Splits a trailing acknowledgement callback off an event's arguments.
function splitAck(args) {
  const last = args[args.length - 1];
  return typeof last === "function" ? [args.slice(0, -1), args.pop()] : [args, () => {}];
}

const opts = parseArgs(process.argv.slice(2));
const httpServer = createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack(true);
  });
  socket.on("broadcast", (...raw) => {
    const [[room, event, ...args], ack] = splitAck(raw);
    io.to(room).emit(event, ...args);
    ack(true);
  });
  socket.on("message-with-ack", (...raw) => {
    const [args, ack] = splitAck(raw);
    ack(...args);
  });
});

httpServer.on("error", (err) => {
  console.error(`cannot listen on ${opts.host}:${opts.port}: ${err.message}`);
  process.exit(1);
});

httpServer.listen(opts.port, opts.host, () => {
  const { address, port } = httpServer.address();
  process.stdout.write(`listening on ${address}:${port}\n`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
