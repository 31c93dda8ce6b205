//! JWT verification end to end: real tokens signed in the test with the key pairs in
//! `testdata/`, and a real JWKS endpoint on `127.0.0.1:0`.
//!
//! - `tokens`: static keys (HMAC secret, RSA, EC, Ed25519 PEM) and every refusal;
//! - `independent`: tokens signed by Node's `crypto` (`testdata/independent/`, made by its
//!   `generate.mjs`) verify, and its broken ones are refused for their reason;
//! - `jwks`: fetching, rotation, unknown-`kid` storms, a down or slow endpoint;
//! - `tls`: a JWKS endpoint over HTTPS with a private CA, trusted only as a system root;
//! - `support`: signing helpers and the JWKS server.

mod jwt {
    mod independent;
    mod jwks;
    pub(crate) mod support;
    mod tls;
    mod tokens;
}
