//! The HTTP API against the built binary and real long-polling clients: emits reach
//! exactly their targets, joins and disconnects act on live sockets, listings show
//! what clients sent, and keys, body limits and rate limits are enforced.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::client::{HttpResponse, Pending, Polling, get, metric};
use super::support::TestServer;

pub(crate) const KEY: &str = "e2e-api-key-0123456789abcdef";

/// A server with the API enabled (plus `env`).
fn server(env: &[(&str, &str)]) -> anyhow::Result<TestServer> {
    let mut builder = TestServer::builder().env("SWITCHBOARD_API__KEYS", KEY);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.start()
}

/// One API call with `key`.
fn call_as(
    addr: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<HttpResponse> {
    let auth = format!("Bearer {key}");
    let headers = [("Authorization", auth.as_str())];
    Pending::send_with(addr, method, path, &headers, body)?.response()
}

/// One API call with the right key; the answer's JSON.
pub(crate) fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let text = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let res = call_as(addr, KEY, method, path, &text)?;
    anyhow::ensure!(
        res.status == 200,
        "{method} {path}: {} {}",
        res.status,
        res.body
    );
    Ok(serde_json::from_str(&res.body)?)
}

/// A polling client connected to `/`, with its socket id.
pub(crate) fn connect(addr: SocketAddr) -> anyhow::Result<(Polling, String)> {
    let session = Polling::handshake(addr)?;
    session.send(&["40"])?;
    let packets = session.poll()?;
    let connect = packets
        .iter()
        .find_map(|p| p.strip_prefix("40"))
        .ok_or_else(|| anyhow::anyhow!("no CONNECT answer in {packets:?}"))?;
    let sid = serde_json::from_str::<Value>(connect)?["sid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((session, sid))
}

#[test]
fn an_emit_to_a_room_joined_through_the_api_reaches_only_its_members() -> anyhow::Result<()> {
    let server = server(&[])?;
    let addr = server.addr();
    let (member, member_id) = connect(addr)?;
    let (outsider, outsider_id) = connect(addr)?;
    let join = json!({"socket_ids": [member_id], "join": ["room:1"]});
    assert_eq!(
        call(addr, "POST", "/api/v1/sockets/join", &join)?["affected"],
        1
    );

    let emit = json!({"rooms": ["room:1"], "event": "news", "args": [{"n": 1}]});
    assert_eq!(call(addr, "POST", "/api/v1/emit", &emit)?["recipients"], 1);
    // A marker sent to the outsider afterwards: per-socket order is preserved, so if
    // the room's event had reached it, it would come first.
    let marker = json!({"socket_ids": [outsider_id], "event": "marker"});
    assert_eq!(
        call(addr, "POST", "/api/v1/emit", &marker)?["recipients"],
        1
    );

    assert_eq!(member.poll()?, [r#"42["news",{"n":1}]"#]);
    assert_eq!(outsider.poll()?, [r#"42["marker"]"#]);
    Ok(())
}

#[test]
fn a_socket_disconnected_through_the_api_is_told_and_no_longer_listed() -> anyhow::Result<()> {
    let server = server(&[])?;
    let addr = server.addr();
    let (leaving, leaving_id) = connect(addr)?;
    let (_staying, staying_id) = connect(addr)?;
    let body = json!({"socket_ids": [leaving_id]});
    assert_eq!(
        call(addr, "POST", "/api/v1/sockets/disconnect", &body)?["affected"],
        1
    );
    assert_eq!(leaving.poll()?, ["41"]);
    let list = call(addr, "GET", "/api/v1/namespaces/%2F/sockets", &Value::Null)?;
    let ids: Vec<&str> = list["sockets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [staying_id.as_str()]);
    Ok(())
}

#[test]
fn listings_show_namespaces_rooms_and_each_socket_s_handshake() -> anyhow::Result<()> {
    let server = server(&[])?;
    let addr = server.addr();
    let (_client, id) = connect(addr)?;
    let join = json!({"socket_ids": [id], "join": ["team"]});
    call(addr, "POST", "/api/v1/sockets/join", &join)?;

    let namespaces = call(addr, "GET", "/api/v1/namespaces", &Value::Null)?;
    assert_eq!(
        namespaces,
        json!({"namespaces": [{"name": "/", "sockets": 1}]})
    );
    let rooms = call(addr, "GET", "/api/v1/namespaces/%2F/rooms", &Value::Null)?;
    assert_eq!(rooms["rooms"], json!([{"name": "team", "size": 1}]));
    let team = call(
        addr,
        "GET",
        "/api/v1/namespaces/%2F/rooms/team",
        &Value::Null,
    )?;
    assert_eq!(team["socket_ids"], json!([id]));

    let socket = call(
        addr,
        "GET",
        &format!("/api/v1/namespaces/%2F/sockets/{id}"),
        &Value::Null,
    )?;
    assert_eq!(socket["rooms"], json!([id, "team"]));
    let handshake = &socket["handshake"];
    let address = handshake["address"].as_str().unwrap_or_default();
    assert!(address.starts_with("127.0.0.1:"), "{handshake}");
    assert_eq!(handshake["headers"]["host"], addr.to_string());
    assert_eq!(handshake["query"]["transport"], "polling");
    assert_eq!(handshake["transport"], "polling");
    assert!(handshake["issued"].as_u64().unwrap_or_default() > 0);
    Ok(())
}

#[test]
fn keys_body_limits_and_rate_limits_are_enforced() -> anyhow::Result<()> {
    let server = server(&[
        ("SWITCHBOARD_API__MAX_BODY_BYTES", "200"),
        ("SWITCHBOARD_API__RATE_LIMIT_PER_SECOND", "1"),
        ("SWITCHBOARD_API__BURST", "3"),
    ])?;
    let addr = server.addr();
    let path = "/api/v1/namespaces";

    let none = Pending::send(addr, "GET", path, "")?.response()?;
    assert_eq!(none.status, 401);
    let wrong = call_as(addr, "wrong-key-0123456789abcdef", "GET", path, "")?;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("\"code\":\"unauthorized\""),
        "{}",
        wrong.body
    );

    let big = json!({"event": "x", "args": ["y".repeat(300)]}).to_string();
    let too_large = call_as(addr, KEY, "POST", "/api/v1/emit", &big)?;
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    assert!(too_large.body.contains("payload_too_large"));

    // The 413 took one token of the burst of three (401s take none: the key comes
    // first); the rest go, then 429 (a token per second comes back meanwhile, so
    // count loosely).
    let mut passed = 0;
    let limited = loop {
        let res = call_as(addr, KEY, "GET", path, "")?;
        match res.status {
            200 if passed < 10 => passed += 1,
            _ => break res,
        }
    };
    assert!(passed >= 2, "{passed}");
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(limited.body.contains("rate_limited"));

    let counted = metric(
        addr,
        r#"switchboard_api_requests_total{route="/api/v1/namespaces",method="GET",status="429"}"#,
    )?;
    assert_eq!(counted, Some(1.0));
    Ok(())
}

#[test]
fn without_keys_the_api_does_not_exist() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let res = call_as(server.addr(), KEY, "GET", "/api/v1/namespaces", "")?;
    assert_eq!(res.status, 404);
    assert!(res.body.contains("not_found"), "{}", res.body);
    Ok(())
}

#[test]
fn with_its_own_listener_the_api_is_only_there() -> anyhow::Result<()> {
    let server = server(&[("SWITCHBOARD_API__LISTEN", "127.0.0.1:0")])?;
    let api = server
        .api_addr()
        .ok_or_else(|| anyhow::anyhow!("no `api listening on` line"))?;
    let path = "/api/v1/namespaces";
    assert_eq!(call_as(server.addr(), KEY, "GET", path, "")?.status, 404);
    assert_eq!(call_as(api, KEY, "GET", path, "")?.status, 200);
    let openapi = call_as(api, KEY, "GET", "/api/v1/openapi.json", "")?;
    assert!(openapi.body.contains("\"openapi\": \"3.1.0\""));
    // Socket.IO, health and metrics stay on the main listener.
    assert_eq!(get(api, "/socket.io/?EIO=4&transport=polling")?.status, 404);
    assert_eq!(get(server.addr(), "/health/live")?.status, 200);
    Ok(())
}

/// A client of the API's own listener that asks for answers and never reads them
/// loses its connection once a write has waited the heartbeat's whole cycle (at least
/// 10 s), as a client of the public listener does: 400 pipelined requests for the
/// OpenAPI document (about 19 MB of answers) are not all answered, and the connection
/// ends; a client that reads as they come gets all 400 on the same server. Before,
/// nothing bounded such a connection: it held its place among the listener's 1,024
/// and its unread answer for as long as the client kept it open, and read at last it
/// gave every answer.
#[test]
fn an_api_client_that_stops_reading_loses_its_connection() -> anyhow::Result<()> {
    const REQUESTS: usize = 400;
    let server = server(&[
        ("SWITCHBOARD_API__LISTEN", "127.0.0.1:0"),
        ("SWITCHBOARD_API__RATE_LIMIT_PER_SECOND", "0"),
        // A short heartbeat cycle: the API's bound is then its floor, 10 s.
        ("SWITCHBOARD_ENGINE__PING_INTERVAL", "300ms"),
        ("SWITCHBOARD_ENGINE__PING_TIMEOUT", "300ms"),
    ])?;
    let api = server
        .api_addr()
        .ok_or_else(|| anyhow::anyhow!("no `api listening on` line"))?;
    let document = call_as(api, KEY, "GET", "/api/v1/openapi.json", "")?;
    anyhow::ensure!(document.status == 200, "{}", document.status);
    let all = REQUESTS * document.body.len();
    // The control: read as they come, every answer arrives (and the connection stays).
    let (received, ended) = pipelined(api, REQUESTS, std::time::Duration::ZERO)?;
    assert!(
        !ended && received >= all,
        "a reader got {received} of {all} bytes"
    );
    // Read nothing for longer than the bound (far longer than the heartbeat's 600 ms),
    // then everything there is.
    let (received, ended) = pipelined(api, REQUESTS, std::time::Duration::from_secs(14))?;
    assert!(ended, "the connection is still open after {received} bytes");
    assert!(received < all, "every answer came: {received} bytes");
    Ok(())
}

/// Sends `requests` pipelined requests for the OpenAPI document on one connection
/// whose receive buffer is small (so the answers back up into the server, whatever the
/// host's buffer sizes), waits `idle` without reading, then reads until the connection
/// ends or is quiet for 5 s: the bytes read, and whether it ended.
fn pipelined(
    api: SocketAddr,
    requests: usize,
    idle: std::time::Duration,
) -> anyhow::Result<(usize, bool)> {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_recv_buffer_size(64 * 1024)?;
    socket.connect(&api.into())?;
    let mut stream: std::net::TcpStream = socket.into();
    let one = format!(
        "GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
    );
    stream.write_all(one.repeat(requests).as_bytes())?;
    std::thread::sleep(idle);
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok((received, true)),
            Ok(n) => received += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok((received, false));
            }
            // Reset: the server closed with requests still unread.
            Err(_) => return Ok((received, true)),
        }
    }
}
