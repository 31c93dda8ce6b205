//! The Socket.IO Admin UI's login sessions in Redis, with the key scheme of
//! `@socket.io/admin-ui`'s `RedisStore`: `socket.io-admin#<sessionId>` holding `true`
//! for 24 hours. A UI that logged in through one node stays logged in when a reload
//! reaches another, and beside Node servers using that store.

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

    /// Whether session `id` exists (`EXISTS`).
    pub async fn exists(&self, id: &str) -> Result<bool, ClusterError> {
        if !plausible(id) {
            return Ok(false);
        }
        let mut conn = self.broker.conn();
        let n: i64 = redis::cmd("EXISTS")
            .arg(key(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        Ok(n == 1)
    }

    /// Saves session `id` for `ttl` (`SET key true EX ttl`, as the package's
    /// `SET` + `EXPIRE` in one command).
    pub async fn save(&self, id: &str, ttl: Duration) -> Result<(), ClusterError> {
        if !plausible(id) {
            return Err(ClusterError::Redis("not a session id".to_owned()));
        }
        let mut conn = self.broker.conn();
        let () = redis::cmd("SET")
            .arg(key(id))
            .arg("true")
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
}
