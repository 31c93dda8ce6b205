// Tokens signed by an implementation independent of the crate under test: Node's
// built-in `crypto` (OpenSSL underneath), no npm packages. The crate's own tests sign
// with `jsonwebtoken`, the same library that verifies, so a bug shared by both sides
// (ECDSA signatures as DER instead of JWS's fixed-length r||s, the wrong PSS salt
// length, the wrong RSA padding) would pass them; tokens.json, checked by
// crates/auth/tests/jwt/independent.rs, would not.
//
// Regenerate (Node 20 or later, from anywhere) and commit the result:
//
//     node crates/auth/testdata/independent/generate.mjs
//
// RSASSA-PKCS1-v1_5, HMAC and Ed25519 signatures are deterministic, so those tokens
// come out byte-identical; ECDSA and RSASSA-PSS are randomized, so theirs change on
// every run (any run's output is as good as any other's). The script checks every
// token it writes with Node before writing it, and fails rather than write a file that
// does not say what its names claim.
//
// What is written (tokens.json):
// - `claims`: the claims every token carries (far-future `exp`, the issuer and
//   audience the crate's tests configure: tests/jwt/support.rs);
// - `hmac_secret`: the HS* secret (64 bytes, enough for HS512 under RFC 7518 §3.2);
// - `valid`: name → token that must verify. The name is the `alg`, with a suffix for
//   ECDSA signatures picked for an edge of the r||s encoding: `/high-s` (s > n/2; no
//   low-s rule in JWS), `/short-r` and `/short-s` (the integer's first byte is zero and
//   must stay as padding);
// - `invalid`: name → token that must be refused: DER-encoded ECDSA signatures, r||s
//   with the zero padding stripped, signatures by a key other than the fixture's, and
//   tokens whose header `alg` was changed after signing.

import crypto from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, "..");

/** The claims of every token; tests/jwt/support.rs holds the issuer and audience. */
const CLAIMS = {
  sub: "alice",
  iss: "https://idp.test/",
  aud: "switchboard-tests",
  iat: 1700000000,
  // 2100-01-01T00:00:00Z: far enough that the checked-in file never expires.
  exp: 4102444800,
  room: "lobby",
};

/** 64 bytes: the RFC 7518 §3.2 minimum for HS512, so one secret serves all three. */
const HMAC_SECRET = "independent-hmac-secret-for-hs256-hs384-and-hs512-64-bytes-long!";

/** ECDSA group orders, for telling high s from low s. */
const ORDER = {
  "P-256": 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  "P-384":
    0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
};

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

function fail(message) {
  throw new Error(`generate.mjs: ${message}`);
}

/** A fixture key pair; the public half is the PEM file the tests use, checked to match. */
function keyPair(name) {
  const privateKey = crypto.createPrivateKey(readFileSync(join(testdata, `${name}-private.pem`)));
  const publicKey = crypto.createPublicKey(readFileSync(join(testdata, `${name}-public.pem`)));
  const derived = crypto.createPublicKey(privateKey).export({ type: "spki", format: "der" });
  if (!derived.equals(publicKey.export({ type: "spki", format: "der" }))) {
    fail(`${name}-public.pem is not the public half of ${name}-private.pem`);
  }
  return { privateKey, publicKey };
}

const rsa = keyPair("rsa");
const rsa2 = keyPair("rsa2");
const p256 = keyPair("ec-p256");
const p384 = keyPair("ec-p384");
const ed25519 = keyPair("ed25519");
const hmacKey = crypto.createSecretKey(Buffer.from(HMAC_SECRET, "utf8"));

/** Keys that are not the fixtures': "signed by someone else". */
const foreign = {
  ec: crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }),
  // A fixed seed keeps the foreign Ed25519 token deterministic: PKCS#8 prefix + seed.
  ed: (() => {
    const prefix = Buffer.from("302e020100300506032b657004220420", "hex");
    const seed = crypto.createHash("sha256").update("switchboard foreign ed25519").digest();
    const privateKey = crypto.createPrivateKey({
      key: Buffer.concat([prefix, seed]),
      format: "der",
      type: "pkcs8",
    });
    return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
  })(),
};

/**
 * How each algorithm signs and verifies with Node (RFC 7518 §3): the hash, the key
 * options (PSS salt = hash length, ECDSA as fixed-length r||s), and the fixture keys.
 */
const PSS = {
  padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
  saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
};
const P1363 = { dsaEncoding: "ieee-p1363" };
const ALGS = {
  HS256: { hmac: "sha256" },
  HS384: { hmac: "sha384" },
  HS512: { hmac: "sha512" },
  RS256: { hash: "sha256", keys: rsa, options: {} },
  RS384: { hash: "sha384", keys: rsa, options: {} },
  RS512: { hash: "sha512", keys: rsa, options: {} },
  PS256: { hash: "sha256", keys: rsa, options: PSS },
  PS384: { hash: "sha384", keys: rsa, options: PSS },
  PS512: { hash: "sha512", keys: rsa, options: PSS },
  ES256: { hash: "sha256", keys: p256, options: P1363, curve: "P-256", size: 32 },
  ES384: { hash: "sha384", keys: p384, options: P1363, curve: "P-384", size: 48 },
  EdDSA: { hash: null, keys: ed25519, options: {} },
};

/** `header.payload` for `alg` over CLAIMS. */
function signingInput(alg) {
  const header = b64url(JSON.stringify({ alg, typ: "JWT" }));
  return `${header}.${b64url(JSON.stringify(CLAIMS))}`;
}

/** The signature bytes of `input` under `alg`, with `keys` and `options` overridable. */
function signature(alg, input, { privateKey, options } = {}) {
  const spec = ALGS[alg];
  if (spec.hmac) {
    return crypto.createHmac(spec.hmac, hmacKey).update(input).digest();
  }
  const key = privateKey ?? spec.keys.privateKey;
  return crypto.sign(spec.hash, Buffer.from(input), { key, ...spec.options, ...options });
}

/** Whether `sig` verifies `input` under `alg` with the fixture key, as Node sees it. */
function nodeVerifies(alg, input, sig, { publicKey, options } = {}) {
  const spec = ALGS[alg];
  if (spec.hmac) {
    const expected = crypto.createHmac(spec.hmac, hmacKey).update(input).digest();
    return expected.length === sig.length && crypto.timingSafeEqual(expected, sig);
  }
  const key = publicKey ?? spec.keys.publicKey;
  return crypto.verify(spec.hash, Buffer.from(input), { key, ...spec.options, ...options }, sig);
}

const token = (input, sig) => `${input}.${b64url(sig)}`;

const valid = {};
const invalid = {};

// One token per algorithm, each checked by Node against the public PEM the tests use.
for (const alg of Object.keys(ALGS)) {
  const input = signingInput(alg);
  const sig = signature(alg, input);
  if (!nodeVerifies(alg, input, sig)) fail(`${alg} token does not verify in Node`);
  valid[alg] = token(input, sig);
}

// ECDSA edge cases of the r||s encoding. The plain ES* token is re-picked with low s
// so the high-s one is the odd one out; short r/s come up once in ~256 signatures.
for (const alg of ["ES256", "ES384"]) {
  const { curve, size } = ALGS[alg];
  const input = signingInput(alg);
  const wanted = {
    [alg]: (r, s) => s <= ORDER[curve] / 2n,
    [`${alg}/high-s`]: (r, s) => s > ORDER[curve] / 2n,
    [`${alg}/short-r`]: (r) => r < 1n << BigInt(8 * (size - 1)),
    [`${alg}/short-s`]: (r, s) => s < 1n << BigInt(8 * (size - 1)),
  };
  for (let tries = 0; Object.keys(wanted).length > 0; tries += 1) {
    if (tries > 100_000) fail(`no ${Object.keys(wanted)} signature in ${tries} tries`);
    const sig = signature(alg, input);
    if (sig.length !== 2 * size) fail(`${alg} r||s is ${sig.length} bytes`);
    const r = BigInt(`0x${sig.subarray(0, size).toString("hex")}`);
    const s = BigInt(`0x${sig.subarray(size).toString("hex")}`);
    for (const [name, fits] of Object.entries(wanted)) {
      if (fits(r, s)) {
        if (!nodeVerifies(alg, input, sig)) fail(`${name} token does not verify in Node`);
        valid[name] = token(input, sig);
        delete wanted[name];
        break;
      }
    }
  }

  // The same claims, signed correctly but with the signature DER-encoded (what a
  // verifier that forgets the JWS encoding would expect).
  const der = signature(alg, input, { options: { dsaEncoding: "der" } });
  if (der.length === 2 * size) fail(`${alg} DER signature happens to be ${2 * size} bytes`);
  if (!nodeVerifies(alg, input, der, { options: { dsaEncoding: "der" } })) {
    fail(`${alg} DER signature does not verify as DER in Node`);
  }
  invalid[`${alg}/der-signature`] = token(input, der);

  // A short-r signature with the zero padding stripped: RFC 7518 §3.4 says exactly
  // 2 × size octets.
  const short = Buffer.from(valid[`${alg}/short-r`].split(".")[2], "base64url");
  invalid[`${alg}/unpadded-r`] = token(input, short.subarray(1));
}

// Signatures by keys that are not the fixtures' (they verify with their own key).
for (const [name, alg, keys] of [
  ["RS256/foreign-key", "RS256", rsa2],
  ["PS256/foreign-key", "PS256", rsa2],
  ["ES256/foreign-key", "ES256", foreign.ec],
  ["EdDSA/foreign-key", "EdDSA", foreign.ed],
]) {
  const input = signingInput(alg);
  const sig = signature(alg, input, { privateKey: keys.privateKey });
  if (!nodeVerifies(alg, input, sig, { publicKey: keys.publicKey })) {
    fail(`${name} does not verify with its own key`);
  }
  if (nodeVerifies(alg, input, sig)) fail(`${name} verifies with the fixture key`);
  invalid[name] = token(input, sig);
}

// Valid tokens whose header `alg` was rewritten after signing: the signature is
// untouched, the declared algorithm is a lie.
for (const [from, to] of [
  ["HS256", "HS512"],
  ["RS256", "RS384"],
  ["RS256", "PS256"],
  ["PS256", "RS256"],
  ["ES256", "ES384"],
  ["EdDSA", "ES256"],
]) {
  const [, payload, sig] = valid[from].split(".");
  const header = b64url(JSON.stringify({ alg: to, typ: "JWT" }));
  invalid[`${from}/relabelled-${to}`] = `${header}.${payload}.${sig}`;
}

const output = {
  _generated_by:
    "crates/auth/testdata/independent/generate.mjs (Node crypto); regenerate with `node crates/auth/testdata/independent/generate.mjs`",
  claims: CLAIMS,
  hmac_secret: HMAC_SECRET,
  valid,
  invalid,
};
writeFileSync(join(here, "tokens.json"), `${JSON.stringify(output, null, 2)}\n`);
console.log(
  `wrote ${Object.keys(valid).length} valid and ${Object.keys(invalid).length} invalid tokens to ${join(here, "tokens.json")}`,
);
