//! Switchboard's authentication: who may connect to a namespace, which rooms a token's
//! claims open, and which backends may call the HTTP API.
//!
//! # Layout
//!
//! - [`jwt`]: JWT verification — [`JwtSettings`] (read from a namespace's `auth` table),
//!   keys from an HMAC secret, a PEM public key or a JWKS URL (cached, refreshed on an
//!   unknown `kid`, rate-limited), [`JwtVerifier`], [`Claims`], [`AuthError`];
//! - [`token`]: where a client's token is found — CONNECT `auth` field, bearer header,
//!   cookie — [`TokenSource`], [`extract_token`];
//! - [`policy`]: room rules — [`RoomPattern`] (`chat:*`), [`RoomTemplate`] (`user:{sub}`);
//! - [`apikey`]: [`ApiKeys`] for the HTTP API, looked up in constant time, and the
//!   [`KeyId`] of the key a request presented.
//!
//! Settings parsers report [`SettingError`]s (`switchboard-settings`'s, shared with the
//! binary and `switchboard-hooks`: one duration grammar, one error format).
//!
//! The crate does IO in one place only: fetching a JWKS over HTTP(S) (`switchboard-http-client`).

pub mod apikey;
pub mod jwt;
pub mod policy;
pub mod token;

pub use apikey::{ApiKeys, KeyId};
pub use jwt::{
    Algorithm, AuthError, Claims, JwksSettings, JwtSettings, JwtVerifier, KeySource, Secret,
};
pub use policy::{RoomPattern, RoomTemplate};
pub use switchboard_settings::SettingError;
pub use token::{TokenSource, extract_token};
