// The committed byte fixtures of the Rust cluster codecs
// (crates/protocol/tests/fixtures/cluster-codec.json) must be exactly what the installed
// npm packages produce today: an upgrade that changes a single byte fails here, and the
// fix is to regenerate (`node cluster/gen-codec-fixtures.mjs`) and make the Rust codecs
// match again. No server is started.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { FIXTURE_PATH, generateFixtures, serialize } from "../cluster/gen-codec-fixtures.mjs";

test("cluster codec fixtures match the installed Node packages", async () => {
  const committed = readFileSync(FIXTURE_PATH, "utf8");
  const fresh = serialize(await generateFixtures());
  // Structural comparison first, for a readable diff; then byte equality.
  assert.deepStrictEqual(
    JSON.parse(fresh),
    JSON.parse(committed),
    "fixtures are stale: run `node cluster/gen-codec-fixtures.mjs` in tests/interop",
  );
  assert.equal(fresh, committed);
});

test("generating twice gives the same fixtures", async () => {
  const first = serialize(await generateFixtures());
  const second = serialize(await generateFixtures());
  assert.equal(first, second);
});
