// What the Chromium tests share: the browser binary and its flags, the official bundle,
// and a small site serving the harness page on an origin of its own.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

/** The pinned official browser bundle. */
export const BUNDLE = resolve(HERE, "../node_modules/socket.io-client/dist/socket.io.min.js");
const PAGE = resolve(HERE, "page.html");

export const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Serves the harness page (or the `page` given, as HTML text) and the official bundle
 * on a port of its own.
 */
export async function startSite({ page } = {}) {
  const files = {
    "/": {
      body: page === undefined ? await readFile(PAGE) : Buffer.from(page),
      type: "text/html; charset=utf-8",
    },
    "/socket.io.min.js": { body: await readFile(BUNDLE), type: "text/javascript" },
    // Chromium asks for it on the first page; a 404 would be a console error.
    "/favicon.ico": { body: Buffer.alloc(0), type: "image/x-icon" },
  };
  const http = createServer((req, res) => {
    const file = files[new URL(req.url, "http://x").pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return http;
}
