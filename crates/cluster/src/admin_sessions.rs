//! The Socket.IO Admin UI's login sessions in Redis, with the key scheme of
//! `@socket.io/admin-ui`'s `RedisStore`: `socket.io-admin#<sessionId>` for 24 hours.
//! A UI that logged in through one node stays logged in when a reload reaches
//! another, and beside Node servers using that store (which only asks whether the key
//! exists).
//!
//! The package stores `true`; a node stores the [`marker`] of the credentials it
//! checked, and takes a session only under the same marker (or Node's `true`, when
//! `admin.accept_node_sessions` says so: off by default, since any app sharing the
//! Redis with the package's store writes one): a new
//! `admin.password_hash` (or username) ends every session the old one opened, where a
//! `true` held for its 24 hours whatever the password had become.

use std::sync::Arc;
use std::time::Duration;

use crate::ClusterError;
use crate::broker::Broker;

/// The key prefix of the package's `RedisStore` (its default `prefix` option).
pub const PREFIX: &str = "socket.io-admin";

/// Longest session id looked up (ids are 16 hex digits in Node, 32 here): a longer
/// one is no session, and never reaches Redis.
const MAX_ID: usize = 64;

/// The sessions, on the node's Redis connection.
#[derive(Clone)]
pub struct AdminSessions {
    broker: Arc<Broker>,
}

impl std::fmt::Debug for AdminSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSessions").finish_non_exhaustive()
    }
}

fn key(id: &str) -> String {
    format!("{PREFIX}#{id}")
}

/// What a session opened with these credentials holds in Redis: 32 hex digits of the
/// SHA-256 of the username and the bcrypt hash (a hash of a hash: it tells nothing of
/// the password, and changes with the hash's salt, so a password set again, even the
/// same one, ends the sessions of the old hash).
pub fn marker(username: &str, password_hash: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        // The username's length first: no two pairs run together into the same text.
        format!("{}:{username}{password_hash}", username.len()).as_bytes(),
    );
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the package's `RedisStore` stores: a session a Node server opened.
const NODE_MARKER: &str = "true";

/// Whether `id` could be a session id: short, hex or base64url characters only (so
/// no key pattern or separator from a client reaches Redis).
fn plausible(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AdminSessions {
    pub(crate) fn new(broker: Arc<Broker>) -> Self {
        AdminSessions { broker }
    }

    /// Whether session `id` exists under `marker` (this node's credentials) or, when
    /// `node_too`, was opened by a Node server (`GET`). A Node server's `true` says
    /// nothing of whose login it was: any app sharing the Redis with the package's
    /// `RedisStore` writes one.
    pub async fn holds(
        &self,
        id: &str,
        marker: &str,
        node_too: bool,
    ) -> Result<bool, ClusterError> {
        if !plausible(id) {
            return Ok(false);
        }
        let mut conn = self.broker.conn();
        let held: Option<String> = redis::cmd("GET")
            .arg(key(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        Ok(held.is_some_and(|v| v == marker || (node_too && v == NODE_MARKER)))
    }

    /// Saves session `id` under `marker` for `ttl` (`SET key marker EX ttl`, as the
    /// package's `SET` + `EXPIRE` in one command).
    pub async fn save(&self, id: &str, ttl: Duration, marker: &str) -> Result<(), ClusterError> {
        if !plausible(id) {
            return Err(ClusterError::Redis("not a session id".to_owned()));
        }
        let mut conn = self.broker.conn();
        let () = redis::cmd("SET")
            .arg(key(id))
            .arg(marker)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_ids_reach_redis() {
        assert!(plausible("0123456789abcdef"));
        assert!(!plausible(""));
        assert!(!plausible("a*"));
        assert!(!plausible("a#b"));
        assert!(!plausible(&"a".repeat(65)));
        assert_eq!(key("ab"), "socket.io-admin#ab");
    }

    #[test]
    fn a_marker_changes_with_the_credentials() {
        let m = marker("admin", "$2b$04$abc");
        assert_eq!(m.len(), 32);
        assert!(m.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(m, marker("admin", "$2b$04$abc"));
        assert_ne!(m, marker("admin", "$2b$04$abd"));
        assert_ne!(m, marker("root", "$2b$04$abc"));
        assert_ne!(marker("a", "b\0c"), marker("a\0b", "c"));
    }
}
