// The setup the fixture test files share: one server (`protocol_fixture cluster`, see
// fixture.mjs) for the whole file, and every client a test opened closed after it.

import { after, afterEach, before } from "node:test";
import { Clients } from "./client.mjs";
import { startFixture } from "./fixture.mjs";

/**
 * Registers the file's hooks and returns `{ server, clients }`: `server` reads through to
 * the fixture started in `before` (`server.url`, `server.port`, `server.stop()`, …),
 * `clients` is emptied after each test. The fixture is stopped after the file, which
 * fails the file if the server had exited on its own.
 */
export function fixtureSuite(options) {
  let started;
  const clients = new Clients();
  before(async () => {
    started = await startFixture(options);
  });
  after(() => started?.stop());
  afterEach(() => clients.closeAll());
  const server = new Proxy(
    {},
    {
      get(_, key) {
        if (!started) throw new Error(`server.${String(key)} read before the fixture started`);
        const value = started[key];
        return typeof value === "function" ? value.bind(started) : value;
      },
    },
  );
  return { server, clients };
}
