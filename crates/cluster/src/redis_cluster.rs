//! Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port...]`
//! (`rediss+cluster://` for TLS) names some of the cluster's nodes (seeds); the client
//! learns the rest, and which master serves which hash slot, from them (`CLUSTER
//! SLOTS`), follows `MOVED` and `ASK` redirections, and asks again after a failover.
//! Credentials and TLS apply to every node; a cluster has only database 0.
//!
//! What a node does differently on a cluster (see `broker.rs`):
//! - commands go through one cluster connection that routes each by its key's slot;
//!   a pipeline must stay in one slot, so batches that touch several keys are split by
//!   [`key_slot`] ([`SlotPipes`]);
//! - subscriptions are made through a cluster connection with RESP3 pushes, which
//!   subscribes each shard channel on its slot's master and again after a failover;
//! - this node's own channels (forwarded polling requests) are shard channels
//!   (`SSUBSCRIBE`/`SPUBLISH`): a classic `PUBLISH` counts only the receivers of the
//!   one node it reached, which cannot tell a dead owner from a live one.

use std::time::Duration;

use crate::connect::redact_url;
use crate::{ClusterConfig, ClusterError};

/// Whether `url` names a Redis Cluster.
pub(crate) fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://")
}

/// A parsed `redis+cluster://` URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClusterUrl {
    /// Each seed as a plain node URL (`redis://user:password@host:port`).
    pub(crate) seeds: Vec<String>,
    /// TLS to every node.
    pub(crate) tls: bool,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seeds: Vec<String> = self.seeds.iter().map(|s| redact_url(s)).collect();
        f.debug_struct("ClusterUrl")
            .field("seeds", &seeds)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ClusterUrl {
    /// Parses a `redis+cluster://` URL; the error shows it redacted.
    pub(crate) fn parse(url: &str) -> Result<ClusterUrl, ClusterError> {
        let bad = |why: &str| ClusterError::BadUrl(format!("{}: {why}", redact_url(url)));
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("redis+cluster://") {
            (false, rest)
        } else {
            return Err(bad("not a redis+cluster:// URL"));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("a cluster URL takes no query"));
        }
        let authority = match rest.split_once('/') {
            None => rest,
            Some((authority, "" | "0")) => authority,
            Some(_) => return Err(bad("a Redis Cluster has only database 0")),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), authority),
        };
        let scheme = if tls { "rediss" } else { "redis" };
        let mut seeds = Vec::new();
        for host in hosts.split(',') {
            let port_ok = host
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(bad("each node must be host:port"));
            }
            seeds.push(format!("{scheme}://{userinfo}{host}"));
        }
        for seed in &seeds {
            redis::Client::open(seed.as_str()).map_err(|_| bad("a node is not a valid address"))?;
        }
        Ok(ClusterUrl { seeds, tls })
    }

    /// The cluster client: `push` gets the pub/sub messages (RESP3) of a subscriber's
    /// connection; without it the client is for commands.
    pub(crate) fn client(
        &self,
        config: &ClusterConfig,
        response_timeout: Duration,
        push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> Result<redis::cluster::ClusterClient, ClusterError> {
        let mut builder = redis::cluster::ClusterClientBuilder::new(self.seeds.clone())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(response_timeout)
            .retries(3)
            .min_retry_wait(50)
            .max_retry_wait(1000);
        if self.tls {
            builder = builder.certs(crate::connect::certificates(config)?);
        } else if config.redis_ca_file.is_some() {
            return Err(ClusterError::BadUrl(
                "a CA file is only used with a rediss+cluster:// URL".to_owned(),
            ));
        }
        if let Some(push) = push {
            builder = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(push);
        }
        builder
            .build()
            .map_err(|e| ClusterError::BadUrl(format!("{self:?}: {e}")))
    }
}

/// The hash slot of `key` (CRC16/XMODEM mod 16384), as Redis Cluster computes it: of
/// the part between the first `{` and the next `}` when that part is not empty.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % 16384
}

/// A key in the same hash slot as `key`, ending in `suffix`, so one script may touch
/// both on a Redis Cluster: `key` wrapped in a hash tag (`{sio:session:x}:epoch`), or,
/// when `key` has a hash tag of its own, `key` followed by `suffix` (its first tag still
/// decides the slot).
pub(crate) fn beside(key: &str, suffix: &str) -> String {
    if hash_tag(key.as_bytes()).is_some() {
        format!("{key}{suffix}")
    } else {
        format!("{{{key}}}{suffix}")
    }
}

/// Checks a name keys are made of (`stream_name`, `session_key_prefix`): a `}` only
/// after a `{` with something between (a hash tag), or no key could share a slot with
/// the keys made of it on a Redis Cluster.
pub fn check_key_name(name: &str) -> Result<(), String> {
    if name.contains('}') && hash_tag(name.as_bytes()).is_none() {
        return Err(format!(
            "`{name}`: a `}}` may only close a hash tag (`{{tag}}`, not empty)"
        ));
    }
    Ok(())
}

/// The hash tag of `key`: what lies between its first `{` and the next `}`, if not empty.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let len = key[open + 1..].iter().position(|&b| b == b'}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
}

/// CRC16/XMODEM (polynomial 0x1021, initial 0), the checksum of Redis Cluster slots.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Commands to send together, as one pipeline on a single Redis, or on a cluster as one
/// pipeline per hash slot (a cluster refuses a pipeline across slots). Commands of one
/// slot keep their order; slots are independent of each other.
pub(crate) struct SlotPipes {
    cluster: bool,
    pipes: Vec<(u16, redis::Pipeline)>,
}

impl SlotPipes {
    pub(crate) fn new(cluster: bool) -> Self {
        SlotPipes {
            cluster,
            pipes: Vec::new(),
        }
    }

    /// The pipeline for commands whose (first) key is `key`.
    pub(crate) fn pipe(&mut self, key: &[u8]) -> &mut redis::Pipeline {
        let slot = if self.cluster { key_slot(key) } else { 0 };
        let at = match self.pipes.iter().position(|(s, _)| *s == slot) {
            Some(at) => at,
            None => {
                self.pipes.push((slot, redis::pipe()));
                self.pipes.len() - 1
            }
        };
        &mut self.pipes[at].1
    }

    /// Sends every pipeline (concurrently on a cluster); the replies of the commands not
    /// ignored, pipeline after pipeline. Any failure fails the whole.
    pub(crate) async fn query<C>(self, conn: &C) -> redis::RedisResult<Vec<redis::Value>>
    where
        C: redis::aio::ConnectionLike + Clone + Send,
    {
        let sends = self.pipes.into_iter().map(|(_, pipe)| {
            let mut conn = conn.clone();
            async move { pipe.query_async::<Vec<redis::Value>>(&mut conn).await }
        });
        let mut out = Vec::new();
        for replies in futures_util::future::join_all(sends).await {
            out.extend(replies?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // Values from `CLUSTER KEYSLOT` of Redis 7.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"socket.io"), key_slot(b"{socket.io}-writer:x"));
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag hashes the whole key.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn keys_beside_another_share_its_slot() {
        for key in ["sio:session:abc", "{app}:sio:session:abc", "a{b}c", "x{y"] {
            let other = beside(key, ":epoch");
            assert!(other.ends_with(":epoch"));
            assert_eq!(
                key_slot(other.as_bytes()),
                key_slot(key.as_bytes()),
                "{key}"
            );
        }
        assert_eq!(beside("socket.io", "-writer:n1"), "{socket.io}-writer:n1");
        assert_eq!(beside("{s}x", "-writer:n1"), "{s}x-writer:n1");
        // No key but itself is in the slot of these.
        assert!(check_key_name("a{}b").is_err());
        assert!(check_key_name("a}b").is_err());
        assert!(check_key_name("a{}{b}").is_err());
        assert!(check_key_name("{app}:sio:session:").is_ok());
        assert!(check_key_name("sio:session:").is_ok());
    }

    #[test]
    fn cluster_urls_name_seeds_with_credentials() -> Result<(), ClusterError> {
        let url = ClusterUrl::parse("redis+cluster://app:hunter2@10.0.0.1:7000,r2.internal:7001")?;
        assert_eq!(
            url.seeds,
            [
                "redis://app:hunter2@10.0.0.1:7000",
                "redis://app:hunter2@r2.internal:7001"
            ]
        );
        assert!(!url.tls);
        assert!(!format!("{url:?}").contains("hunter2"));
        let tls = ClusterUrl::parse("rediss+cluster://[::1]:7000/0")?;
        assert_eq!(tls.seeds, ["rediss://[::1]:7000"]);
        assert!(tls.tls);
        Ok(())
    }

    #[test]
    fn bad_cluster_urls_are_refused_redacted() {
        for bad in [
            "redis+cluster://",
            "redis+cluster://h1",
            "redis+cluster://:hunter2@h1:7000,h2",
            "redis+cluster://h1:7000/1",
            "redis+cluster://h1:7000?x=1",
            "redis://h1:7000",
        ] {
            let err = ClusterUrl::parse(bad).err().map(|e| e.to_string());
            assert!(err.is_some(), "{bad}");
            assert!(!err.unwrap_or_default().contains("hunter2"), "{bad}");
        }
    }
}
