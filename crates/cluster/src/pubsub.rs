//! The `redis` adapter: `@socket.io/redis-adapter` 8.x on the wire.
//!
//! Channels per namespace (prefix `socket.io`): broadcasts on `socket.io#<nsp>#`
//! (`socket.io#<nsp>#<room>#` for one room), requests on `socket.io-request#<nsp>#`,
//! responses on `socket.io-response#<nsp>#` (and the node-specific
//! `socket.io-response#<nsp>#<uid>#`). Broadcasts are notepack `[uid, packet, opts]`;
//! requests are JSON except broadcasts with acks. The server count is `PUBSUB NUMSUB`
//! of the request channel: one subscriber connection per live node, so it drops by
//! itself when a node dies.
//!
//! Delivery is at most once, as with Node: a broadcast published while Redis is down
//! is lost for the other nodes (counted in `publish_errors`). Use `redis-streams` for
//! durability.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use crate::wire::redis_adapter::{self as wire, Request, Response};
use crate::wire::{BroadcastFlags as WireFlags, BroadcastOpts as WireOpts};
use bytes::Bytes;
use serde_json::Value;
use switchboard_engine::adapter::{
    AckReport, AckSink, Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastOptions,
    MemoryAdapter, Room, SocketInfo,
};
use switchboard_engine::sio::Namespace;
use switchboard_engine::{Payload, Shutdown};
use switchboard_protocol::Sid;
use switchboard_protocol::socketio::Packet;

use crate::broker::{Broker, Health, Sub};
use crate::requests::{Requests, answer_broadcast_with_ack, collect, first_arg, relay_acks};
use crate::{ClusterConfig, ClusterError, NodeHandle, random_uid};

/// Answers to this node's requests.
#[derive(Debug)]
enum Answer {
    Rooms(Vec<String>),
    Fetched(Vec<SocketInfo>),
    ServerSide(Value),
}

/// One node's membership of a `redis` cluster: every namespace's adapter shares it.
pub(crate) struct PubSubNode {
    uid: String,
    prefix: String,
    request_timeout: Duration,
    broker: OnceLock<Arc<Broker>>,
    namespaces: RwLock<HashMap<String, Weak<Namespace>>>,
    requests: Requests<Answer>,
    acks: Requests<AckReport>,
}

impl std::fmt::Debug for PubSubNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubNode")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl NodeHandle for PubSubNode {
    fn uid(&self) -> &str {
        &self.uid
    }
    fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }
}

impl PubSubNode {
    pub(crate) fn start(
        config: &ClusterConfig,
        shutdown: Shutdown,
    ) -> Result<Arc<PubSubNode>, ClusterError> {
        let node = Arc::new(PubSubNode {
            uid: random_uid(6),
            prefix: config.key_prefix.clone(),
            request_timeout: config.request_timeout,
            broker: OnceLock::new(),
            namespaces: RwLock::default(),
            requests: Requests::default(),
            acks: Requests::default(),
        });
        let weak = Arc::downgrade(&node);
        let broker = Broker::start(
            &config.redis_url,
            Arc::new(move |channel: &str, payload: Bytes| {
                if let Some(node) = weak.upgrade() {
                    node.on_message(channel, payload);
                }
            }),
            shutdown,
        )?;
        let _ = node.broker.set(broker);
        Ok(node)
    }

    fn broker(&self) -> &Arc<Broker> {
        // Set in `start` before the node is shared.
        self.broker.get().expect("broker set at start")
    }

    pub(crate) fn health(&self) -> &Arc<Health> {
        self.broker().health()
    }

    pub(crate) fn factory(self: &Arc<Self>) -> AdapterFactory {
        let node = self.clone();
        Arc::new(move |nsp: &str| {
            Arc::new(PubSubAdapter {
                node: node.clone(),
                channels: wire::Channels::new(&node.prefix, nsp),
                index: MemoryAdapter::default(),
            }) as Arc<dyn Adapter>
        })
    }

    fn namespace(&self, nsp: &str) -> Option<Arc<Namespace>> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(nsp)
            .and_then(Weak::upgrade)
    }

    /// Every message from the subscriber connection.
    fn on_message(&self, channel: &str, payload: Bytes) {
        match wire::classify_channel(&self.prefix, channel) {
            Some(wire::ChannelKind::Broadcast { nsp, room }) => {
                self.on_broadcast(&nsp, room.as_deref(), &payload);
            }
            Some(wire::ChannelKind::Request { nsp }) => self.on_request(&nsp, &payload),
            Some(wire::ChannelKind::Response) => self.on_response(&payload),
            None => {}
        }
    }

    fn on_broadcast(&self, nsp: &str, room: Option<&str>, payload: &[u8]) {
        let Some(ns) = self.namespace(nsp) else {
            return;
        };
        if let Some(room) = room
            && ns.adapter().room_size(room) == 0
            && room
                .parse::<Sid>()
                .map_or(true, |sid| ns.socket(sid).is_none())
        {
            return;
        }
        let message = match wire::BroadcastMessage::decode(payload) {
            Ok(m) => m,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed broadcast");
                return;
            }
        };
        if message.uid == self.uid || message.packet.nsp != nsp {
            return;
        }
        let opts = engine_opts(&message.opts);
        ns.broadcast_local(message.packet, &opts);
    }

    fn on_request(&self, nsp: &str, payload: &[u8]) {
        let request = match Request::decode(payload) {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed request");
                return;
            }
        };
        let Some(ns) = self.namespace(nsp) else {
            return;
        };
        let channels = wire::Channels::new(&self.prefix, nsp);
        let respond = |response: Response| {
            self.broker()
                .publish(channels.response.clone(), Bytes::from(response.encode()));
        };
        let join = matches!(request, Request::RemoteJoin { .. });
        match request {
            Request::Sockets {
                request_id, rooms, ..
            } => {
                if self.requests.contains(&request_id) {
                    return;
                }
                let opts = BroadcastOptions {
                    rooms: rooms.iter().map(|r| Room::from(r.as_str())).collect(),
                    ..BroadcastOptions::default()
                };
                let sockets = ns
                    .local_sockets(&opts)
                    .iter()
                    .map(|s| s.id().to_string())
                    .collect();
                respond(Response::Sockets {
                    request_id,
                    sockets,
                });
            }
            Request::AllRooms { request_id, .. } => {
                if self.requests.contains(&request_id) {
                    return;
                }
                let rooms = local_rooms(&ns);
                respond(Response::AllRooms { request_id, rooms });
            }
            Request::RemoteJoin { uid, target, rooms }
            | Request::RemoteLeave { uid, target, rooms } => {
                if uid == self.uid {
                    return;
                }
                match target {
                    wire::Target::Opts(opts) => {
                        let rooms: Vec<Room> =
                            rooms.iter().map(|r| Room::from(r.as_str())).collect();
                        if join {
                            ns.add_sockets_local(&engine_opts(&opts), &rooms);
                        } else {
                            ns.del_sockets_local(&engine_opts(&opts), &rooms);
                        }
                    }
                    wire::Target::Socket { request_id, sid } => {
                        let Some(socket) = find(&ns, &sid) else {
                            return;
                        };
                        if join {
                            let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
                            socket.join(&rooms);
                        } else {
                            for room in &rooms {
                                socket.leave(room);
                            }
                        }
                        respond(Response::Done { request_id });
                    }
                }
            }
            Request::RemoteDisconnect { uid, target, close } => {
                if uid == self.uid {
                    return;
                }
                match target {
                    wire::Target::Opts(opts) => {
                        ns.disconnect_sockets_local(&engine_opts(&opts), close)
                    }
                    wire::Target::Socket { request_id, sid } => {
                        let Some(socket) = find(&ns, &sid) else {
                            return;
                        };
                        if close {
                            socket.close_connection(
                                switchboard_engine::DisconnectReason::ForcedClose,
                            );
                        } else {
                            socket.disconnect();
                        }
                        respond(Response::Done { request_id });
                    }
                }
            }
            Request::RemoteFetch {
                request_id, opts, ..
            } => {
                if self.requests.contains(&request_id) {
                    return;
                }
                let sockets = ns.fetch_sockets_local(&engine_opts(&opts));
                respond(Response::RemoteFetch {
                    request_id,
                    sockets,
                });
            }
            Request::ServerSideEmit {
                uid,
                request_id,
                data,
            } => {
                if uid == self.uid {
                    return;
                }
                let ack = request_id.map(|request_id| {
                    let broker = self.broker().clone();
                    let channel = channels.response.clone();
                    Box::new(move |answer: Value| {
                        let response = Response::ServerSideEmit {
                            request_id,
                            data: answer,
                        };
                        broker.publish(channel, Bytes::from(response.encode()));
                    }) as switchboard_engine::adapter::ServerAck
                });
                ns.server_side_event(data, ack);
            }
            Request::Broadcast {
                uid,
                request_id,
                packet,
                opts,
            } => {
                if uid == self.uid || self.acks.contains(&request_id) {
                    return;
                }
                answer_broadcast_with_ack(
                    &ns,
                    packet,
                    engine_opts(&opts),
                    self.broker().clone(),
                    channels.response.clone(),
                    move |report| {
                        let request_id = request_id.clone();
                        match report {
                            AckReport::ClientCount(client_count) => {
                                Response::BroadcastClientCount {
                                    request_id,
                                    client_count,
                                }
                            }
                            AckReport::Ack(payload) => Response::BroadcastAck {
                                request_id,
                                packet: first_arg(payload.args),
                            },
                        }
                        .encode()
                    },
                );
            }
        }
    }

    fn on_response(&self, payload: &[u8]) {
        let response = match Response::decode(payload) {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed response");
                return;
            }
        };
        match response {
            // This node never sends the legacy SOCKETS request.
            Response::Sockets { .. } => {}
            Response::AllRooms { request_id, rooms } => {
                self.requests.answer(&request_id, Answer::Rooms(rooms));
            }
            Response::RemoteFetch {
                request_id,
                sockets,
            } => {
                self.requests.answer(&request_id, Answer::Fetched(sockets));
            }
            Response::ServerSideEmit { request_id, data } => {
                self.requests.answer(&request_id, Answer::ServerSide(data));
            }
            Response::BroadcastClientCount {
                request_id,
                client_count,
            } => {
                self.acks
                    .answer(&request_id, AckReport::ClientCount(client_count));
            }
            Response::BroadcastAck { request_id, packet } => {
                self.acks
                    .answer(&request_id, AckReport::Ack(Payload::new(vec![packet])));
            }
            Response::Done { .. } => {}
        }
    }

    async fn server_count(&self, channels: &wire::Channels) -> Result<usize, AdapterError> {
        self.broker()
            .numsub(&channels.request)
            .await
            .map_err(|e| AdapterError::Unavailable(e.to_string()))
    }

    /// Publishes a request and collects one answer from each other node.
    async fn ask(
        &self,
        channels: &wire::Channels,
        build: impl FnOnce(String) -> Request,
        timeout: Duration,
    ) -> Result<Vec<Answer>, AdapterError> {
        let servers = self.server_count(channels).await?;
        if servers <= 1 {
            return Ok(Vec::new());
        }
        let request_id = random_uid(6);
        let (_registration, mut rx) = self.requests.register(request_id.clone());
        let request = build(request_id);
        self.broker()
            .publish(channels.request.clone(), Bytes::from(request.encode()));
        collect(&mut rx, servers - 1, timeout).await
    }
}

/// One namespace's adapter: the local room index plus the node's Redis membership.
#[derive(Debug)]
struct PubSubAdapter {
    node: Arc<PubSubNode>,
    channels: wire::Channels,
    index: MemoryAdapter,
}

impl Adapter for PubSubAdapter {
    delegate_room_index!();

    fn init(&self, ns: &Arc<Namespace>) {
        self.node
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.name().to_owned(), Arc::downgrade(ns));
        let broker = self.node.broker();
        broker.subscribe(Sub::Pattern(self.channels.pattern.clone()));
        broker.subscribe(Sub::Channel(self.channels.request.clone()));
        broker.subscribe(Sub::Channel(self.channels.response.clone()));
        broker.subscribe(Sub::Channel(
            self.channels.specific_response(&self.node.uid),
        ));
    }

    fn broadcast(&self, ns: &Arc<Namespace>, packet: Packet, opts: BroadcastOptions) -> usize {
        if !opts.flags.local {
            let message = wire::BroadcastMessage {
                uid: self.node.uid.clone(),
                packet: packet.clone(),
                opts: wire_opts(&opts),
            };
            let channel = match opts.rooms.as_slice() {
                [room] => self.channels.room(room),
                _ => self.channels.broadcast.clone(),
            };
            self.node
                .broker()
                .publish(channel, Bytes::from(message.encode()));
        }
        ns.broadcast_local(packet, &opts)
    }

    fn broadcast_with_ack(
        &self,
        ns: &Arc<Namespace>,
        packet: Packet,
        opts: BroadcastOptions,
        sink: AckSink,
    ) {
        if !opts.flags.local {
            let request_id = random_uid(6);
            let (registration, rx) = self.node.acks.register(request_id.clone());
            let request = Request::Broadcast {
                uid: self.node.uid.clone(),
                request_id,
                packet: packet.clone(),
                opts: wire_opts(&opts),
            };
            self.node
                .broker()
                .publish(self.channels.request.clone(), Bytes::from(request.encode()));
            let timeout = opts.flags.timeout.unwrap_or(self.node.request_timeout);
            relay_acks(registration, rx, sink.clone(), timeout);
        }
        ns.broadcast_with_ack_local(packet, &opts, sink);
    }

    fn add_sockets(&self, ns: &Arc<Namespace>, opts: BroadcastOptions, rooms: Vec<Room>) {
        if !opts.flags.local {
            let request = Request::RemoteJoin {
                uid: self.node.uid.clone(),
                target: wire::Target::Opts(wire_opts(&opts)),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            };
            self.node
                .broker()
                .publish(self.channels.request.clone(), Bytes::from(request.encode()));
        }
        ns.add_sockets_local(&opts, &rooms);
    }

    fn del_sockets(&self, ns: &Arc<Namespace>, opts: BroadcastOptions, rooms: Vec<Room>) {
        if !opts.flags.local {
            let request = Request::RemoteLeave {
                uid: self.node.uid.clone(),
                target: wire::Target::Opts(wire_opts(&opts)),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            };
            self.node
                .broker()
                .publish(self.channels.request.clone(), Bytes::from(request.encode()));
        }
        ns.del_sockets_local(&opts, &rooms);
    }

    fn disconnect_sockets(&self, ns: &Arc<Namespace>, opts: BroadcastOptions, close: bool) {
        if !opts.flags.local {
            let request = Request::RemoteDisconnect {
                uid: self.node.uid.clone(),
                target: wire::Target::Opts(wire_opts(&opts)),
                close,
            };
            self.node
                .broker()
                .publish(self.channels.request.clone(), Bytes::from(request.encode()));
        }
        ns.disconnect_sockets_local(&opts, close);
    }

    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Arc<Namespace>,
        opts: BroadcastOptions,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        Box::pin(async move {
            let mut sockets = ns.fetch_sockets_local(&opts);
            if opts.flags.local {
                return Ok(sockets);
            }
            let uid = self.node.uid.clone();
            let wire_opts = wire_opts(&opts);
            let answers = self
                .node
                .ask(
                    &self.channels,
                    |request_id| Request::RemoteFetch {
                        uid,
                        request_id,
                        opts: wire_opts,
                    },
                    self.node.request_timeout,
                )
                .await?;
            for answer in answers {
                if let Answer::Fetched(remote) = answer {
                    sockets.extend(remote);
                }
            }
            Ok(sockets)
        })
    }

    fn all_rooms<'a>(
        &'a self,
        ns: &'a Arc<Namespace>,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move {
            let mut rooms: Vec<String> = local_rooms(ns);
            let uid = self.node.uid.clone();
            let answers = self
                .node
                .ask(
                    &self.channels,
                    |request_id| Request::AllRooms { uid, request_id },
                    self.node.request_timeout,
                )
                .await?;
            for answer in answers {
                if let Answer::Rooms(remote) = answer {
                    rooms.extend(remote);
                }
            }
            rooms.sort();
            rooms.dedup();
            Ok(rooms.into_iter().map(|r| Room::from(r.as_str())).collect())
        })
    }

    fn server_side_emit(&self, _ns: &Arc<Namespace>, args: Vec<Value>) {
        let request = Request::ServerSideEmit {
            uid: self.node.uid.clone(),
            request_id: None,
            data: args,
        };
        self.node
            .broker()
            .publish(self.channels.request.clone(), Bytes::from(request.encode()));
    }

    fn server_side_emit_with_ack<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        args: Vec<Value>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        Box::pin(async move {
            let uid = self.node.uid.clone();
            let answers = self
                .node
                .ask(
                    &self.channels,
                    |request_id| Request::ServerSideEmit {
                        uid,
                        request_id: Some(request_id),
                        data: args,
                    },
                    timeout,
                )
                .await?;
            Ok(answers
                .into_iter()
                .filter_map(|a| match a {
                    Answer::ServerSide(v) => Some(v),
                    _ => None,
                })
                .collect())
        })
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async move { self.node.server_count(&self.channels).await })
    }
}

/// The rooms with a member on this node, socket id rooms included (as Node's
/// `adapter.rooms`, which holds every socket's own room).
fn local_rooms(ns: &Arc<Namespace>) -> Vec<String> {
    let mut rooms: Vec<String> = ns.adapter().rooms().iter().map(|r| r.to_string()).collect();
    rooms.extend(ns.sockets().iter().map(|s| s.id().to_string()));
    rooms
}

fn find(ns: &Arc<Namespace>, sid: &str) -> Option<Arc<switchboard_engine::Socket>> {
    ns.socket(sid.parse().ok()?)
}

pub(crate) fn engine_opts(opts: &WireOpts) -> BroadcastOptions {
    BroadcastOptions {
        rooms: opts.rooms.iter().map(|r| Room::from(r.as_str())).collect(),
        except: opts.except.iter().map(|r| Room::from(r.as_str())).collect(),
        flags: switchboard_engine::adapter::BroadcastFlags {
            volatile: opts.flags.volatile,
            local: opts.flags.local,
            timeout: opts.flags.timeout.map(Duration::from_millis),
        },
    }
}

pub(crate) fn wire_opts(opts: &BroadcastOptions) -> WireOpts {
    WireOpts {
        rooms: opts.rooms.iter().map(|r| r.to_string()).collect(),
        except: opts.except.iter().map(|r| r.to_string()).collect(),
        flags: WireFlags {
            volatile: opts.flags.volatile,
            local: opts.flags.local,
            timeout: opts
                .flags
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        },
    }
}
