//! A peer that vanishes without a reset (its network gone, a device asleep), over a
//! real network: a veth pair into a network namespace, whose end is then taken down.
//! The kernel drops the connection once what the server sent goes unacknowledged for
//! the heartbeat's cycle, at least 10 s (`TCP_USER_TIMEOUT`, set by `serve`), and the
//! session closes.
//! Before, an SSE listener, which cannot answer pings, stayed until retransmissions
//! gave up, about 15 minutes: its heartbeats counted as answered once the kernel took
//! them.
//!
//! Making a namespace needs root (as the test command, which installs packages, runs);
//! without it the test says so and does nothing.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::Duration;

use switchboard_engine::{Io, SocketIoConfig, SseConfig, not_found, serve, shutdown};

/// A namespace and a veth pair into it, removed when dropped.
struct Veth {
    namespace: String,
    inner: String,
    outer: String,
    host: String,
}

impl Veth {
    fn create() -> Veth {
        let n = std::process::id() % 10_000;
        let veth = Veth {
            namespace: format!("sbvanish{n}"),
            inner: format!("sbv{n}n"),
            outer: format!("sbv{n}h"),
            host: format!("10.213.{}.1", n % 250),
        };
        veth.remove();
        let peer = format!("10.213.{}.2/24", n % 250);
        let host = format!("{}/24", veth.host);
        let (ns, inner, outer) = (&veth.namespace, &veth.inner, &veth.outer);
        ip(&["netns", "add", ns]);
        ip(&["link", "add", outer, "type", "veth", "peer", "name", inner]);
        ip(&["link", "set", inner, "netns", ns]);
        ip(&["addr", "add", &host, "dev", outer]);
        ip(&["link", "set", outer, "up"]);
        ip(&[
            "netns", "exec", ns, "ip", "addr", "add", &peer, "dev", inner,
        ]);
        ip(&["netns", "exec", ns, "ip", "link", "set", inner, "up"]);
        veth
    }

    /// The namespace's end goes down: nothing the server sends is acknowledged.
    fn cut(&self) {
        ip(&[
            "netns",
            "exec",
            &self.namespace,
            "ip",
            "link",
            "set",
            &self.inner,
            "down",
        ]);
    }

    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        self.remove();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Waits up to `within` (well above the user timeout, far below retransmissions'
/// minutes) for `done`.
async fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_listener_whose_network_vanished_is_closed_by_the_kernel() {
    if !is_root() {
        eprintln!("not root: no network namespace can be made; nothing tested");
        return;
    }
    let veth = Veth::create();
    let (trigger, signal) = shutdown::channel();
    let mut config = SocketIoConfig::default();
    config.engine.ping_interval = Duration::from_millis(500);
    config.engine.ping_timeout = Duration::from_millis(500);
    config.engine.sse = Some(SseConfig {
        heartbeat: Duration::from_millis(300),
        ..SseConfig::default()
    });
    let io = Io::new(config, signal.clone());
    io.of("/");
    let listener = tokio::net::TcpListener::bind((veth.host.as_str(), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, io.engine().clone(), not_found, signal));
    // A listener in the namespace that reads its stream, for a minute at most.
    let listen = format!(
        "import socket, time\n\
         s = socket.create_connection(('{}', {}))\n\
         s.sendall(b'GET /sse?nsp=/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
         s.settimeout(60)\n\
         end = time.time() + 60\n\
         while time.time() < end and s.recv(4096): pass\n",
        addr.ip(),
        addr.port()
    );
    let mut client = tokio::process::Command::new("ip")
        .args(["netns", "exec", &veth.namespace, "python3", "-c", &listen])
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let ns = io.of("/");
    assert!(
        eventually(Duration::from_secs(10), || ns.socket_count() == 1).await,
        "the listener connected"
    );
    veth.cut();
    assert!(
        eventually(Duration::from_secs(30), || ns.socket_count() == 0).await,
        "a listener gone without a reset is still connected"
    );
    let _ = client.kill().await;
    drop(trigger);
}
