//! Redis over TLS (`rediss://`) and with credentials, against a real `redis-server`
//! started with `--tls-port`, a throwaway CA and server certificate made by the
//! `openssl` command for this test, a `requirepass` and an ACL user.
//!
//! - the CA file makes the server trusted; without it the handshake fails;
//! - a wrong password is a clear error (`ClusterError::Auth`), a right one works;
//! - two nodes form a cluster over TLS with an ACL user: broadcasts and forwarded
//!   polling requests cross.
//! - a Sentinel that serves TLS only is asked over TLS with `sentinel_tls=true` (and
//!   the CA file), and the master it names over TLS too; without `sentinel_tls` it is
//!   unreachable, as it is without the CA file.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, eventually, formed};
use switchboard_cluster::{AdapterKind, ClusterConfig, ClusterError, ping};

const USER: &str = "app";
const USER_PASSWORD: &str = "app-password-0123456789";
const DEFAULT_PASSWORD: &str = "default-password-0123456789";

/// A TLS-only `redis-server` with its certificates, in its own directory.
struct TlsRedis(RedisServer);

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=switchboard test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

impl TlsRedis {
    async fn start() -> TlsRedis {
        // The certificates first, in the directory the server runs in.
        let builder = RedisServer::builder();
        certificates(builder.dir());
        let password = format!(">{USER_PASSWORD}");
        let server = builder
            .tls()
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .args(["--requirepass", DEFAULT_PASSWORD])
            // An ACL user: `user app on >password ~* &* +@all`, one word per argument.
            .args(["--user", USER, "on", &password, "~*", "&*", "+@all"])
            .start()
            .await;
        TlsRedis(server)
    }

    /// The settings for `user:password`, trusting the test CA.
    fn config(&self, user: &str, password: &str) -> ClusterConfig {
        ClusterConfig {
            redis_url: format!("rediss://{user}:{password}@127.0.0.1:{}", self.0.port()),
            redis_ca_file: Some(self.0.dir().join("ca.pem")),
            ..ClusterConfig::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_needs_the_ca_and_credentials_are_checked() {
    let redis = TlsRedis::start().await;
    // An ACL user and the default user's `requirepass`, both over TLS.
    assert!(ping(&redis.config(USER, USER_PASSWORD)).await.is_ok());
    assert!(ping(&redis.config("", DEFAULT_PASSWORD)).await.is_ok());

    for (user, password) in [
        (USER, "wrong-password"),
        ("", "wrong-password"),
        ("nobody", USER_PASSWORD),
    ] {
        match ping(&redis.config(user, password)).await {
            Err(ClusterError::Auth(why)) => {
                assert!(!why.contains("wrong-password"), "{why}");
                // What the operator reads.
                let shown = ClusterError::Auth(why).to_string();
                assert!(shown.contains("refused the credentials"), "{shown}");
            }
            other => panic!("{user}:{password}: {other:?}"),
        }
    }

    // Without the CA file, the system's roots do not vouch for the test CA.
    let untrusted = ClusterConfig {
        redis_ca_file: None,
        ..redis.config(USER, USER_PASSWORD)
    };
    match ping(&untrusted).await {
        Err(ClusterError::Redis(why)) => {
            assert!(why.to_lowercase().contains("certificate"), "{why}")
        }
        other => panic!("an untrusted server: {other:?}"),
    }
    // And plain text is not TLS.
    let plain = ClusterConfig {
        redis_url: format!(
            "redis://{USER}:{USER_PASSWORD}@127.0.0.1:{}",
            redis.0.port()
        ),
        redis_ca_file: None,
        ..ClusterConfig::default()
    };
    assert!(ping(&plain).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_forms_over_tls_with_an_acl_user() {
    let redis = TlsRedis::start().await;
    for adapter in [AdapterKind::Redis, AdapterKind::RedisStreams] {
        let config = redis.config(USER, USER_PASSWORD);
        let one = Node::start_with(config.clone(), NodeOptions::new(adapter, "one")).await;
        let two = Node::start_with(config, NodeOptions::new(adapter, "two")).await;
        formed(&[&one, &two]).await;

        // A broadcast from one reaches a client of two.
        let (on_two, _) = Client::connected(&two.io).await;
        one.ns().emit("over-tls", json!(adapter.as_str()));
        assert_eq!(
            on_two.events().await,
            [json!(["over-tls", adapter.as_str()])]
        );

        // A polling request for one's session, sent to two, is forwarded (signed).
        let (on_one, _) = Client::connected(&one.io).await;
        for socket in one.ns().sockets() {
            socket.emit("forwarded", json!(1)).unwrap();
        }
        let events = on_one.via(&two.io).events().await;
        assert!(events.contains(&json!(["forwarded", 1])), "{events:?}");
    }
}

/// A `redis-server --sentinel` that serves TLS only, with the master's certificates,
/// watching `master` as `mymaster`; killed when dropped.
struct TlsSentinel {
    child: std::process::Child,
    port: u16,
}

impl TlsSentinel {
    async fn start(master: &TlsRedis) -> TlsSentinel {
        let dir = master.0.dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // Sentinel rewrites its file, so it is one of its own.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port 0\ntls-port {port}\nbind 127.0.0.1\nprotected-mode no\n\
                 tls-cert-file server.pem\ntls-key-file server.key\n\
                 tls-ca-cert-file ca.pem\ntls-auth-clients no\ntls-replication yes\n\
                 sentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel auth-pass mymaster {DEFAULT_PASSWORD}\n",
                master.0.port()
            ),
        )
        .unwrap();
        let child = Command::new(switchboard_test_support::redis_server_bin())
            .arg(&conf)
            .arg("--sentinel")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server --sentinel (apt-get install -y redis-server)");
        let sentinel = TlsSentinel { child, port };
        eventually("the Sentinel to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        sentinel
    }
}

impl Drop for TlsSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_are_asked_over_tls_with_sentinel_tls() {
    let redis = TlsRedis::start().await;
    let sentinel = TlsSentinel::start(&redis).await;
    let config = |query: &str, ca: bool| ClusterConfig {
        redis_url: format!(
            "rediss+sentinel://:{DEFAULT_PASSWORD}@127.0.0.1:{}/mymaster{query}",
            sentinel.port
        ),
        redis_ca_file: ca.then(|| redis.0.dir().join("ca.pem")),
        ..ClusterConfig::default()
    };
    // The Sentinel over TLS names the master, which is checked and used over TLS.
    let tls = config("?sentinel_tls=true", true);
    assert!(switchboard_cluster::is_tls_url(&tls.redis_url));
    if let Err(err) = ping(&tls).await {
        panic!("over TLS to the Sentinel and the master: {err}");
    }
    // A node starts (before 2026-12-07 it could not: the placeholder client made
    // before the first answer was plain, and a CA file refused it) and serves: a
    // broadcast from one node reaches a client of the other, through the master the
    // Sentinel named.
    let one = Node::start_with(tls.clone(), NodeOptions::new(AdapterKind::Redis, "one")).await;
    let two = Node::start_with(tls.clone(), NodeOptions::new(AdapterKind::Redis, "two")).await;
    formed(&[&one, &two]).await;
    let (on_two, _) = Client::connected(&two.io).await;
    one.ns().emit("via-sentinel", json!(1));
    assert_eq!(on_two.events().await, [json!(["via-sentinel", 1])]);
    // Plain text to a Sentinel that serves TLS only: none answers.
    match ping(&config("", true)).await {
        Err(ClusterError::SentinelsUnreachable(_)) => {}
        other => panic!("plain text to a TLS Sentinel: {other:?}"),
    }
    // Without the CA file nothing vouches for the Sentinel's certificate.
    match ping(&config("?sentinel_tls=true", false)).await {
        Err(ClusterError::SentinelsUnreachable(why)) => {
            assert!(why.to_lowercase().contains("certificate"), "{why}");
        }
        other => panic!("an untrusted Sentinel: {other:?}"),
    }
}
