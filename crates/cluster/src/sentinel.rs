//! Redis Sentinel: which Redis is the master now.
//!
//! `redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>]
//! [?sentinel_username=U&sentinel_password=P&sentinel_tls=true]` (`rediss+sentinel://`
//! for TLS to the master) names the Sentinels and the master they watch; the
//! credentials, database and TLS settings before the query are the master's, the
//! query's are the Sentinels' (for Sentinels with `requirepass` or an ACL user; they are
//! asked without credentials otherwise, and over TLS only with `sentinel_tls=true`,
//! trusting what the master's TLS trusts). A node asks the Sentinels, in order, for the
//! master's address (`SENTINEL get-master-addr-by-name`), checks with `ROLE` that the
//! server there is a master (a Sentinel may briefly answer with a demoted one), and
//! connects to it as to a plain `redis://` URL. The broker asks again every second
//! (`SENTINEL_CHECK`) and moves every connection over when the answer changes (a
//! failover); see `broker.rs`.
//!
//! Replicas are never read from: every node reads and writes the master only.

use std::time::Duration;

use crate::ClusterError;
use crate::connect::redact_url;

/// How long one Sentinel or one candidate master may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// A parsed `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `host:port` of each Sentinel, in the order given.
    pub(crate) sentinels: Vec<String>,
    /// The master's name in the Sentinels' configuration.
    pub(crate) master: String,
    /// `user:password@` (with the `@`), or empty.
    userinfo: String,
    /// `/db`, or empty.
    db: String,
    /// `user:password@` (with the `@`) for the Sentinels, or empty.
    sentinel_userinfo: String,
    /// TLS to the master.
    pub(crate) tls: bool,
    /// TLS to the Sentinels (`sentinel_tls=true`).
    pub(crate) sentinel_tls: bool,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("tls", &self.tls)
            .field("sentinel_tls", &self.sentinel_tls)
            .finish_non_exhaustive()
    }
}

/// Whether `url` names Sentinels rather than one Redis.
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    url.starts_with("redis+sentinel://") || url.starts_with("rediss+sentinel://")
}

impl SentinelUrl {
    /// Parses a `redis+sentinel://` URL; the error shows it redacted.
    pub(crate) fn parse(url: &str) -> Result<SentinelUrl, ClusterError> {
        let bad = |why: &str| ClusterError::BadUrl(format!("{}: {why}", redact_url(url)));
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (false, rest)
        } else {
            return Err(bad("not a redis+sentinel:// URL"));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let SentinelQuery {
            userinfo: sentinel_userinfo,
            tls: sentinel_tls,
        } = match query {
            Some(query) => sentinel_query(query).map_err(|why| bad(&why))?,
            None => SentinelQuery::default(),
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no master name (…/<master name>)"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), authority),
        };
        let sentinels: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for s in &sentinels {
            let port_ok = s
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(bad("each Sentinel must be host:port"));
            }
        }
        let mut parts = path.splitn(2, '/');
        let master = parts.next().unwrap_or_default();
        if master.is_empty() || !master.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad("no master name (…/<master name>)"));
        }
        let db = match parts.next() {
            None | Some("") => String::new(),
            Some(db) if db.parse::<u32>().is_ok() => format!("/{db}"),
            Some(_) => return Err(bad("the database must be a number")),
        };
        Ok(SentinelUrl {
            sentinels,
            master: master.to_owned(),
            userinfo,
            db,
            sentinel_userinfo,
            tls,
            sentinel_tls,
        })
    }

    /// The URL of the master at `address` (`host:port`), with this URL's credentials,
    /// database and TLS.
    pub(crate) fn master_url(&self, address: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{}{address}{}", self.userinfo, self.db)
    }

    /// The URL a Sentinel at `address` (`host:port`) is asked at, with the query's
    /// credentials and TLS.
    fn sentinel_url(&self, address: &str) -> String {
        let scheme = if self.sentinel_tls { "rediss" } else { "redis" };
        format!("{scheme}://{}{address}", self.sentinel_userinfo)
    }

    /// Asks the Sentinels, in order, for the master's address and checks that it is a
    /// master: the first answer that holds wins. `client_for` makes the client of a
    /// URL, a Sentinel's or a candidate master's (TLS settings are the caller's).
    pub(crate) async fn resolve(
        &self,
        client_for: impl Fn(&str) -> Result<redis::Client, ClusterError>,
    ) -> Result<String, ClusterError> {
        let mut last = ClusterError::Redis(format!("no Sentinel knows master {:?}", self.master));
        let mut answered = false;
        for sentinel in &self.sentinels {
            let asked = match client_for(&self.sentinel_url(sentinel)) {
                Ok(client) => self.ask(sentinel, &client).await,
                Err(err) => Err(err),
            };
            answered |= asked.is_ok();
            match asked {
                Ok(Some(address)) => {
                    // One Sentinel's answer that makes no client (an address the
                    // client refuses) is that Sentinel's failure: the next is asked.
                    let client = match client_for(&self.master_url(&address)) {
                        Ok(client) => client,
                        Err(err) => {
                            last = err;
                            continue;
                        }
                    };
                    match is_master(&client).await {
                        Ok(true) => return Ok(address),
                        Ok(false) => {
                            last = ClusterError::Redis(format!(
                                "Sentinel {sentinel} names {address}, which is not a master (yet)"
                            ));
                        }
                        Err(err) => last = err,
                    }
                }
                Ok(None) => {
                    last = ClusterError::Redis(format!(
                        "Sentinel {sentinel} does not know master {:?}",
                        self.master
                    ));
                }
                Err(err) => last = err,
            }
        }
        Err(match answered {
            true => last,
            false => ClusterError::SentinelsUnreachable(last.to_string()),
        })
    }

    /// One Sentinel's answer: the master's `host:port`, or `None` if it does not know it.
    async fn ask(
        &self,
        sentinel: &str,
        client: &redis::Client,
    ) -> Result<Option<String>, ClusterError> {
        let reply: Option<(String, String)> = tokio::time::timeout(ASK_TIMEOUT, async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async(&mut conn)
                .await
        })
        .await
        .map_err(|_| ClusterError::Redis(format!("Sentinel {sentinel} did not answer")))?
        .map_err(|e| ClusterError::Redis(format!("Sentinel {sentinel}: {e}")))?;
        reply
            .map(|(host, port)| master_address(&host, &port))
            .transpose()
            .map_err(|why| ClusterError::Redis(format!("Sentinel {sentinel}: {why}")))
    }
}

/// A Sentinel's `host` and `port` as the `host:port` of a URL, or why not: the answer
/// is spliced into the master's URL (with its credentials), so a port such as `6379/5`
/// would pick another database, and a host holding `@`, `/` or `?` would change what
/// the URL says.
fn master_address(host: &str, port: &str) -> Result<String, String> {
    let port: u16 = port.parse().map_err(|_| {
        format!(
            "it named a master port that is not one: {:?}",
            switchboard_engine::untrusted::cut(port, 64)
        )
    })?;
    let ipv6 = host.contains(':');
    let fits =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (ipv6 && c == ':');
    if host.is_empty() || host.len() > 253 || !host.chars().all(fits) {
        return Err(format!(
            "it named a master host that is not one: {:?}",
            switchboard_engine::untrusted::cut(host, 64)
        ));
    }
    Ok(match ipv6 {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    })
}

/// What the query of a Sentinel URL says about the Sentinels.
#[derive(Default)]
struct SentinelQuery {
    /// `user:password@`, or empty.
    userinfo: String,
    /// Whether they are asked over TLS.
    tls: bool,
}

/// The Sentinels' `user:password@` from the `sentinel_username` / `sentinel_password`
/// query parameters (percent-encoded as in any URL; empty when neither is given), and
/// `sentinel_tls` (`true` or `false`, default `false`).
fn sentinel_query(query: &str) -> Result<SentinelQuery, String> {
    let (mut user, mut password, mut tls) = (String::new(), None, false);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sentinel_username", v)) => user = v.to_owned(),
            Some(("sentinel_password", v)) => password = Some(v.to_owned()),
            Some(("sentinel_tls", "true")) => tls = true,
            Some(("sentinel_tls", "false")) => tls = false,
            Some(("sentinel_tls", _)) => {
                return Err("sentinel_tls is true or false".to_owned());
            }
            _ => {
                return Err("the only query parameters are sentinel_username, \
                     sentinel_password and sentinel_tls"
                    .to_owned());
            }
        }
    }
    let userinfo = match password {
        Some(password) => format!("{user}:{password}@"),
        None if user.is_empty() => String::new(),
        None => return Err("sentinel_username needs sentinel_password".to_owned()),
    };
    Ok(SentinelQuery { userinfo, tls })
}

/// Whether the server of `client` says it is a master (`ROLE`).
pub(crate) async fn is_master(client: &redis::Client) -> Result<bool, ClusterError> {
    let role: redis::Value = tokio::time::timeout(ASK_TIMEOUT, async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("ROLE").query_async(&mut conn).await
    })
    .await
    .map_err(|_| ClusterError::Redis("the named master did not answer".to_owned()))?
    .map_err(|e| crate::connect::classify(&e))?;
    Ok(match role {
        redis::Value::Array(items) => {
            matches!(
                items.first(),
                Some(redis::Value::BulkString(b)) if b == b"master"
            ) || matches!(items.first(), Some(redis::Value::SimpleString(s)) if s == "master")
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_sentinels_master_credentials_and_database() -> Result<(), ClusterError> {
        let url = SentinelUrl::parse(
            "redis+sentinel://app:hunter2@10.0.0.1:26379,10.0.0.2:26379,s3.internal:26380/mymaster/2",
        )?;
        assert_eq!(
            url.sentinels,
            ["10.0.0.1:26379", "10.0.0.2:26379", "s3.internal:26380"]
        );
        assert_eq!(url.master, "mymaster");
        assert!(!url.tls);
        assert_eq!(
            url.master_url("10.0.0.9:6379"),
            "redis://app:hunter2@10.0.0.9:6379/2"
        );
        let with_auth = SentinelUrl::parse(
            "redis+sentinel://s1:26379/m?sentinel_username=sen&sentinel_password=hunter3",
        )?;
        assert_eq!(with_auth.sentinel_userinfo, "sen:hunter3@");
        assert_eq!(
            with_auth.master_url("h:1"),
            "redis://h:1",
            "not the master's"
        );
        assert!(!format!("{with_auth:?}").contains("hunter3"));
        let tls = SentinelUrl::parse("rediss+sentinel://s1:26379/m")?;
        assert_eq!(tls.master_url("[::1]:6380"), "rediss://[::1]:6380");
        assert_eq!(
            tls.sentinel_url("s1:26379"),
            "redis://s1:26379",
            "plain unless asked"
        );
        let both = SentinelUrl::parse(
            "rediss+sentinel://s1:26379/m?sentinel_tls=true&sentinel_password=hunter3",
        )?;
        assert_eq!(both.sentinel_url("s1:26379"), "rediss://:hunter3@s1:26379");
        let sentinels_only = SentinelUrl::parse("redis+sentinel://s1:26379/m?sentinel_tls=true")?;
        assert_eq!(sentinels_only.sentinel_url("s1:26379"), "rediss://s1:26379");
        assert_eq!(sentinels_only.master_url("h:1"), "redis://h:1");
        assert!(!format!("{url:?}").contains("hunter2"), "never printed");
        Ok(())
    }

    #[test]
    fn bad_sentinel_urls_are_refused_redacted() {
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1/m",
            "redis+sentinel://:pw@s1:26379,:1/m",
            "redis+sentinel://s1:26379/m/x",
            "redis+sentinel://:hunter2@s1/m",
            "redis+sentinel://s1:26379/m?sentinel_username=u",
            "redis+sentinel://s1:26379/m?pass=hunter2",
            "redis+sentinel://s1:26379/m?sentinel_tls=yes&sentinel_password=hunter2",
        ] {
            let err = SentinelUrl::parse(bad).err().map(|e| e.to_string());
            assert!(err.is_some(), "{bad}");
            assert!(!err.unwrap_or_default().contains("hunter2"), "{bad}");
        }
    }

    /// A Sentinel's answer is spliced into the master's URL: only a host name or
    /// address and a port are taken.
    #[test]
    fn a_sentinels_answer_must_be_a_host_and_a_port() {
        assert_eq!(
            master_address("10.0.0.5", "6379").as_deref(),
            Ok("10.0.0.5:6379")
        );
        assert_eq!(master_address("::1", "6380").as_deref(), Ok("[::1]:6380"));
        assert_eq!(
            master_address("redis-1.internal", "6379").as_deref(),
            Ok("redis-1.internal:6379")
        );
        for (host, port) in [
            ("h", "6379/5"),
            ("h", "70000"),
            ("h", ""),
            ("evil@h", "6379"),
            ("h/5", "6379"),
            ("h?x=1", "6379"),
            ("", "6379"),
        ] {
            assert!(master_address(host, port).is_err(), "{host} {port}");
        }
    }
}
