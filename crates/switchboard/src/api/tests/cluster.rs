//! The API over a cluster adapter whose broker is unreachable: every route that needs
//! the other nodes answers `503 cluster_unavailable` and acts on nobody, while the
//! routes that need only this node keep working.

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;
use switchboard_engine::Namespace;
use switchboard_engine::adapter::{
    Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastOptions, MemoryAdapter, Room,
    SocketInfo,
};
use switchboard_engine::protocol::Sid;
use switchboard_engine::protocol::socketio::Packet;

use super::support::Harness;

/// A cluster adapter that cannot reach its broker: the room index works (it is this
/// node's), every request to the other nodes fails as a Redis adapter's does when
/// Redis is down.
#[derive(Debug, Default)]
struct Unreachable(MemoryAdapter);

fn down() -> AdapterError {
    AdapterError::Unavailable("connection refused".into())
}

impl Adapter for Unreachable {
    fn add_all(&self, sid: Sid, rooms: &[&str]) -> Vec<Room> {
        self.0.add_all(sid, rooms)
    }
    fn del(&self, sid: Sid, room: &str) -> bool {
        self.0.del(sid, room)
    }
    fn del_all(&self, sid: Sid) -> Vec<Room> {
        self.0.del_all(sid)
    }
    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.0.socket_rooms(sid)
    }
    fn sockets_in(&self, rooms: &[Room], out: &mut Vec<Sid>) {
        self.0.sockets_in(rooms, out);
    }
    fn rooms(&self) -> Vec<Room> {
        self.0.rooms()
    }
    fn room_size(&self, room: &str) -> usize {
        self.0.room_size(room)
    }

    fn broadcast_durable(
        &self,
        ns: &Arc<Namespace>,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<usize, AdapterError>> {
        // Delivered here, never confirmed for the others.
        self.broadcast(ns, packet, opts);
        Box::pin(std::future::ready(Err(down())))
    }

    fn fetch_sockets<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        _opts: BroadcastOptions,
        _page: &'a switchboard_engine::adapter::SocketsPage,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        Box::pin(std::future::ready(Err(down())))
    }

    fn all_rooms<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(std::future::ready(Err(down())))
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(std::future::ready(Err(down())))
    }
}

fn unreachable() -> AdapterFactory {
    Arc::new(|_| Arc::new(Unreachable::default()))
}

#[tokio::test(start_paused = true)]
async fn without_the_cluster_cluster_wide_routes_are_503_and_act_on_nobody() {
    let h = Harness::with_adapters(unreachable());
    let client = h.connect("/").await;
    let id = client.id.clone();

    let posts = [
        ("/api/v1/emit", json!({"event": "news"})),
        (
            "/api/v1/sockets/join",
            json!({"socket_ids": [id], "join": ["vip"]}),
        ),
        (
            "/api/v1/sockets/leave",
            json!({"socket_ids": [id], "leave": ["vip"]}),
        ),
        ("/api/v1/sockets/disconnect", json!({"all": true})),
    ];
    for (path, body) in &posts {
        let reply = h.post(path, body).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            reply.code(),
            "cluster_unavailable",
            "{path}: {}",
            reply.text
        );
        assert!(reply.json["message"].is_string(), "{path}");
    }
    let gets = [
        "/api/v1/namespaces".to_owned(),
        "/api/v1/namespaces/%2F/rooms".to_owned(),
        "/api/v1/namespaces/%2F/rooms/vip".to_owned(),
        "/api/v1/namespaces/%2F/sockets".to_owned(),
        // Not on this node: only the others could say.
        "/api/v1/namespaces/%2F/sockets/AAAAAAAAAAAAAAAAAAAA".to_owned(),
    ];
    for path in &gets {
        let reply = h.get(path).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            reply.code(),
            "cluster_unavailable",
            "{path}: {}",
            reply.text
        );
    }

    // Nothing was joined nor disconnected; the emit reached this node's socket (the
    // 503 says the others may have missed it).
    assert_eq!(client.next().await, [r#"42["news"]"#]);
    let socket = h.get(&format!("/api/v1/namespaces/%2F/sockets/{id}")).await;
    assert_eq!(
        socket.status,
        StatusCode::OK,
        "a local socket needs no cluster"
    );
    assert_eq!(socket.json["rooms"], json!([id]));
    let openapi = h.get("/api/v1/openapi.json").await;
    assert_eq!(openapi.status, StatusCode::OK);
}
