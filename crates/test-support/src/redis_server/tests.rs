//! The harness against a real `redis-server`: ports, socket, restarts, pauses,
//! options and files, and the failure without one.

use std::net::TcpStream;

use super::*;

/// One command over plain TCP, and its reply's line (a bulk string's value).
fn ask(redis: &RedisServer, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).expect("connect");
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .expect("a read timeout");
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .expect("write");
    let mut line = || {
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).expect("a reply");
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).trim_end().to_owned()
    };
    let first = line();
    // A bulk string's value is on the next line.
    match first.strip_prefix('$') {
        Some(len) if len != "-1" => line(),
        _ => first,
    }
}

/// The process state letter in `/proc/<pid>/stat` (`T` when stopped).
fn state(redis: &RedisServer) -> Option<char> {
    let pid = redis.child.as_ref()?.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[tokio::test]
async fn it_answers_on_its_port_and_socket_and_keeps_data_across_a_restart() {
    let mut redis = RedisServer::start().await;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(ask(&redis, "SET kept yes"), "+OK");
    assert!(answers(&redis.dir().join(SOCKET)));
    assert!(
        redis.unix_url().ends_with("/redis.sock"),
        "{}",
        redis.unix_url()
    );

    let port = redis.port();
    redis.kill();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "killed");
    redis.restart().await;
    assert_eq!(redis.port(), port);
    assert_eq!(
        ask(&redis, "GET kept"),
        "yes",
        "the append-only file kept it"
    );
}

#[test]
fn a_blocking_test_gets_the_same_server() {
    let mut redis = RedisServer::start_blocking();
    assert_eq!(ask(&redis, "PING"), "+PONG");
    redis.kill();
    redis.restart_blocking();
    assert_eq!(ask(&redis, "PING"), "+PONG");
}

#[tokio::test]
async fn the_test_adds_options_and_files() {
    let builder = RedisServer::builder();
    std::fs::write(builder.dir().join("note.txt"), "the test's file").expect("write");
    let redis = builder.args(["--requirepass", "hunter2"]).start().await;
    assert!(ask(&redis, "PING").starts_with("-NOAUTH"));
    assert_eq!(ask(&redis, "AUTH hunter2"), "+OK");
    assert!(redis.dir().join("note.txt").is_file());

    let dir = redis.dir().to_owned();
    drop(redis);
    assert!(!dir.exists(), "the directory goes with the server");
}

#[tokio::test]
async fn a_paused_server_is_stopped_until_resumed() {
    let redis = RedisServer::start().await;
    redis.pause();
    crate::eventually("the server to stop", || async {
        state(&redis) == Some('T')
    })
    .await;
    redis.resume();
    crate::eventually("the server to go on", || async {
        state(&redis) != Some('T')
    })
    .await;
    assert_eq!(ask(&redis, "PING"), "+PONG");
    // Dropped while paused, it still goes.
    redis.pause();
    let pid = redis.child.as_ref().map(Child::id);
    drop(redis);
    assert!(pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()));
}

#[test]
#[should_panic(expected = "apt-get install -y redis-server")]
fn without_redis_server_the_test_fails_with_the_install_hint() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    find_redis_server(
        None,
        Some(empty.path().as_os_str().to_owned()),
        &empty.path().join("redis-server"),
    );
}

#[test]
#[should_panic(expected = "is not a file")]
fn a_wrong_redis_server_bin_fails_the_test() {
    find_redis_server(
        Some("/nonexistent/redis-server".into()),
        None,
        Path::new("/"),
    );
}
