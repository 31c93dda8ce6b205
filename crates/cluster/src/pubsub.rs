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

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchboard_engine::Shutdown;
use switchboard_engine::adapter::{
    AckReport, Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastOptions, ClusterOp,
    MemoryAdapter, NodeAnswers, Room, SocketInfo, SocketsPage,
};
use switchboard_engine::sio::Namespace;
use switchboard_protocol::Sid;
use switchboard_protocol::cluster::redis_adapter::{
    BroadcastMessage, ChannelKind, ChannelTarget, Channels, RawResponse, Request, RequestBody,
    RequestType, Response, parse_channel,
};
use switchboard_protocol::socketio::Packet;

use crate::broker::{Broker, Publish, Reply, Sub, handler_of};
use crate::common::{Namespaces, request_acks, server_ack, sockets_answer};
use crate::convert::{
    self, ack_argument, ack_payload, count, engine_opts, engine_page, relayable, remote_socket,
    socket_info, to_json, to_wire, wire_opts, wire_page,
};
use crate::questions;
use crate::requests::{Requests, answer_broadcast_with_ack, collect};
use crate::{ClusterConfig, ClusterError, NodeHandle, random_uid};

/// One node's membership of a `redis` cluster: every namespace's adapter shares it.
pub(crate) struct PubSubNode {
    uid: String,
    prefix: String,
    request_timeout: Duration,
    broker: OnceLock<Arc<Broker>>,
    /// Questions to the other Switchboard nodes (set by `Cluster::start`).
    questions: questions::Slot,
    namespaces: Namespaces,
    /// This node's requests (all rooms, fetch sockets, server-side emits), answered
    /// with responses that carry no type: the waiting side reads them according to
    /// the request it sent.
    requests: Requests<RawResponse>,
    /// This node's broadcasts with acknowledgements.
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
    fn questions(&self) -> &questions::Slot {
        &self.questions
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
            questions: OnceLock::new(),
            namespaces: Namespaces::default(),
            requests: Requests::default(),
            acks: Requests::default(),
        });
        let on_message = handler_of(&node, PubSubNode::on_message);
        let broker = Broker::start(config, on_message, shutdown)?;
        let _ = node.broker.set(broker);
        Ok(node)
    }

    fn broker(&self) -> &Arc<Broker> {
        // Set in `start` before the node is shared.
        self.broker.get().expect("broker set at start")
    }

    pub(crate) fn factory(self: &Arc<Self>) -> AdapterFactory {
        let node = self.clone();
        Arc::new(move |nsp: &str| {
            Arc::new(PubSubAdapter {
                node: node.clone(),
                channels: Channels::new(&node.prefix, nsp),
                index: MemoryAdapter::default(),
            }) as Arc<dyn Adapter>
        })
    }

    /// Answers to a request go to `channel` over classic pub/sub.
    fn reply(&self, channel: String) -> Reply {
        Reply {
            broker: self.broker().clone(),
            channel,
            kind: Publish::Classic,
        }
    }

    fn namespace(&self, nsp: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(nsp)
    }

    /// Every message from the subscriber connection.
    fn on_message(&self, channel: &str, payload: Bytes) {
        match parse_channel(&self.prefix, channel) {
            Some(ChannelKind::Broadcast { nsp, target }) => {
                self.on_broadcast(nsp, target, &payload);
            }
            Some(ChannelKind::Request { nsp }) => self.on_request(nsp, &payload),
            Some(ChannelKind::Response { .. }) => self.on_response(&payload),
            None => {}
        }
    }

    fn on_broadcast(&self, nsp: &str, target: ChannelTarget<'_>, payload: &[u8]) {
        let Some(ns) = self.namespace(nsp) else {
            return;
        };
        // A room (or socket) with no member here is skipped before decoding, as Node's
        // adapter does, unless recovery is on: a socket waiting to recover has left its
        // rooms, and what is sent to them meanwhile must still reach the namespace's
        // recovery buffer, or its client resumes with a silent gap.
        if let ChannelTarget::Room(room) = target
            && !ns.recovery_enabled()
            && ns.adapter().room_size(room) == 0
            && room
                .parse::<Sid>()
                .map_or(true, |sid| ns.socket(sid).is_none())
        {
            return;
        }
        let message = match BroadcastMessage::decode(payload) {
            Ok(m) => m,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed broadcast");
                return;
            }
        };
        if message.uid == self.uid || message.packet.nsp != nsp {
            return;
        }
        if !relayable(&message.packet) {
            tracing::debug!(kind = ?message.packet.kind, "ignoring broadcast of a non-event packet");
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
        let channels = Channels::new(&self.prefix, nsp);
        let respond = |response: Response| {
            self.broker().publish(
                channels.response().to_owned(),
                Bytes::from(response.encode()),
            );
        };
        // Requests without a uid (emitters, old adapters) are never this node's.
        let from_self = request.uid.as_deref() == Some(self.uid.as_str());
        match request.body {
            RequestBody::Sockets { request_id, rooms } => {
                if self.requests.contains(&request_id) {
                    return;
                }
                let opts = BroadcastOptions {
                    rooms: convert::rooms(&rooms),
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
            RequestBody::AllRooms { request_id } => {
                if self.requests.contains(&request_id) {
                    return;
                }
                let rooms = local_rooms(&ns);
                respond(Response::AllRooms { request_id, rooms });
            }
            RequestBody::SocketsJoin { opts, rooms } if !from_self => {
                ns.add_sockets_local(&engine_opts(&opts), &convert::rooms(&rooms));
            }
            RequestBody::SocketsLeave { opts, rooms } if !from_self => {
                ns.del_sockets_local(&engine_opts(&opts), &convert::rooms(&rooms));
            }
            RequestBody::DisconnectSockets { opts, close } if !from_self => {
                ns.disconnect_sockets_local(&engine_opts(&opts), close);
            }
            RequestBody::RemoteJoin {
                request_id,
                sid,
                room,
            } if !from_self => {
                if let Some(socket) = find(&ns, &sid) {
                    let max = ns.handlers().max_rooms_per_socket();
                    socket.join_within(&[room.as_str()], max);
                    respond(Response::Done { request_id });
                }
            }
            RequestBody::RemoteLeave {
                request_id,
                sid,
                room,
            } if !from_self => {
                if let Some(socket) = find(&ns, &sid) {
                    socket.leave(&room);
                    respond(Response::Done { request_id });
                }
            }
            RequestBody::RemoteDisconnect {
                request_id,
                sid,
                close,
            } if !from_self => {
                if let Some(socket) = find(&ns, &sid) {
                    if close {
                        socket.disconnect_connection();
                    } else {
                        socket.disconnect();
                    }
                    respond(Response::Done { request_id });
                }
            }
            RequestBody::FetchSockets {
                request_id,
                opts,
                page,
            } => {
                if self.requests.contains(&request_id) {
                    return;
                }
                let paged = page.is_some();
                let sockets = ns
                    .fetch_sockets_local_page(&engine_opts(&opts), &engine_page(page))
                    .into_iter()
                    .map(remote_socket)
                    .collect();
                let answer = sockets_answer(sockets, paged, |sockets| {
                    let request_id = request_id.clone();
                    Response::FetchSockets {
                        request_id,
                        sockets,
                    }
                    .encode()
                });
                if let Some(answer) = answer {
                    self.broker()
                        .publish(channels.response().to_owned(), Bytes::from(answer));
                }
            }
            RequestBody::ServerSideEmit { request_id, data } if !from_self => {
                let ack = request_id.map(|request_id| {
                    let reply_to = channels.response().to_owned();
                    server_ack(self.reply(reply_to), move |answer| {
                        Response::ServerSideEmit {
                            request_id,
                            data: Some(to_wire(&answer)),
                        }
                        .encode()
                    })
                });
                ns.server_side_event(data.into_iter().map(to_json).collect(), ack);
            }
            RequestBody::Broadcast {
                request_id,
                packet,
                opts,
            } if !from_self => {
                if self.acks.contains(&request_id) {
                    return;
                }
                if !relayable(&packet) {
                    tracing::debug!(kind = ?packet.kind, "ignoring broadcast of a non-event packet");
                    return;
                }
                answer_broadcast_with_ack(
                    &ns,
                    packet,
                    engine_opts(&opts),
                    self.reply(channels.response().to_owned()),
                    move |report| {
                        let request_id = request_id.clone();
                        match report {
                            AckReport::ClientCount(n) => Response::BroadcastClientCount {
                                request_id,
                                client_count: n as u64,
                            },
                            AckReport::Ack(payload) => Response::BroadcastAck {
                                request_id,
                                packet: Some(ack_argument(payload)),
                            },
                        }
                        .encode()
                    },
                );
            }
            // This node's own requests.
            _ => {}
        }
    }

    /// Every response on the namespace's response channels: this node's broadcasts
    /// with acks take theirs here; other answers go to the request waiting for them,
    /// which knows how to read them.
    fn on_response(&self, payload: &[u8]) {
        // Another node's answer (most of what this channel carries): not decoded.
        if let Some(id) = RawResponse::peek_request_id(payload)
            && !self.acks.contains(&id)
            && !self.requests.contains(&id)
        {
            return;
        }
        let response = match RawResponse::decode(payload) {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed response");
                return;
            }
        };
        // Node ignores responses without a request id.
        let Some(request_id) = response.request_id().map(str::to_owned) else {
            return;
        };
        if !self.acks.contains(&request_id) {
            self.requests.answer(&request_id, response);
            return;
        }
        let report = match response.into_response(RequestType::Broadcast) {
            Ok(Response::BroadcastClientCount { client_count, .. }) => {
                AckReport::ClientCount(count(client_count))
            }
            Ok(Response::BroadcastAck { packet, .. }) => {
                AckReport::Ack(ack_payload(packet.unwrap_or_default()))
            }
            Ok(_) => return,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed acknowledgement");
                return;
            }
        };
        self.acks.answer(&request_id, report);
    }

    /// Publishes a request and collects one answer from each other node, read as
    /// answers to a request of type `kind`. An answer that does not read as one still
    /// counts (as in Node) but adds nothing.
    async fn ask(
        &self,
        channels: &Channels,
        build: impl FnOnce(String) -> Request,
        timeout: Duration,
    ) -> Result<Vec<Response>, AdapterError> {
        let servers = self
            .broker()
            .server_count(Publish::Classic, channels.request())
            .await?;
        if servers <= 1 {
            return Ok(Vec::new());
        }
        let request_id = random_uid(6);
        let (_registration, mut rx) = self.requests.register(request_id.clone());
        let request = build(request_id);
        let kind = request.body.request_type();
        self.broker()
            .publish(channels.request().to_owned(), Bytes::from(request.encode()));
        let answers = collect(&mut rx, servers - 1, timeout).await?;
        Ok(answers
            .into_iter()
            .filter_map(|raw| match raw.into_response(kind) {
                Ok(response) => Some(response),
                Err(err) => {
                    tracing::debug!(error = %err, "ignoring malformed answer");
                    None
                }
            })
            .collect())
    }
}

/// One namespace's adapter: the local room index plus the node's Redis membership.
#[derive(Debug)]
struct PubSubAdapter {
    node: Arc<PubSubNode>,
    channels: Channels,
    index: MemoryAdapter,
}

impl PubSubAdapter {
    /// The namespace's channels, as Node's adapter subscribes them: every broadcast
    /// (a pattern), requests, responses and the responses meant for this node only.
    fn subscriptions(&self) -> [Sub; 4] {
        [
            Sub::Pattern(self.channels.pattern()),
            Sub::Channel(self.channels.request().to_owned()),
            Sub::Channel(self.channels.response().to_owned()),
            Sub::Channel(self.channels.specific_response(&self.node.uid)),
        ]
    }

    /// This node's request with `body`.
    fn request(&self, body: RequestBody) -> Request {
        Request {
            uid: Some(self.node.uid.clone()),
            body,
        }
    }

    /// Publishes a request that expects no answer.
    fn publish_request(&self, body: RequestBody) {
        let request = self.request(body);
        self.node.broker().publish(
            self.channels.request().to_owned(),
            Bytes::from(request.encode()),
        );
    }
}

impl Adapter for PubSubAdapter {
    delegate_room_index!();

    fn init(&self, ns: &Arc<Namespace>) {
        self.node.namespaces.insert(ns);
        self.node.broker().subscribe_all(self.subscriptions());
    }

    /// Undoes `init`. The engine calls it under its registry lock, so a namespace of
    /// the same name created next subscribes after this unsubscribes (the broker keeps
    /// both in order) and may already be in the map: only this instance is removed.
    fn close(&self, ns: &Namespace) {
        self.node.namespaces.remove(ns);
        self.node.broker().unsubscribe_all(self.subscriptions());
    }

    fn broadcast(&self, ns: &Arc<Namespace>, packet: Packet, opts: BroadcastOptions) -> usize {
        if !opts.flags.local {
            let message = BroadcastMessage {
                uid: self.node.uid.clone(),
                packet: packet.clone(),
                opts: wire_opts(&opts),
            };
            let channel = self.channels.for_opts(&message.opts);
            self.node
                .broker()
                .publish(channel, Bytes::from(message.encode()));
        }
        ns.broadcast_local(packet, &opts)
    }

    /// Room operations and broadcasts with acks are requests, as in Node.
    fn publish_op(&self, _ns: &Arc<Namespace>, opts: &BroadcastOptions, op: ClusterOp<'_>) {
        let body = match op {
            ClusterOp::Join(rooms) => RequestBody::SocketsJoin {
                opts: wire_opts(opts),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            },
            ClusterOp::Leave(rooms) => RequestBody::SocketsLeave {
                opts: wire_opts(opts),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            },
            ClusterOp::Disconnect { close } => RequestBody::DisconnectSockets {
                opts: wire_opts(opts),
                close,
            },
            ClusterOp::BroadcastWithAck { packet, sink } => {
                let publish = |request_id| {
                    self.publish_request(RequestBody::Broadcast {
                        request_id,
                        packet: packet.clone(),
                        opts: wire_opts(opts),
                    });
                };
                let timeout = self.node.request_timeout;
                request_acks(&self.node.acks, random_uid(6), publish, opts, sink, timeout);
                return;
            }
        };
        self.publish_request(body);
    }

    fn fetch_remote_sockets<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        opts: BroadcastOptions,
        page: &'a SocketsPage,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        Box::pin(async move {
            let wire_opts = wire_opts(&opts);
            let wire_page = wire_page(page);
            let answers = self
                .node
                .ask(
                    &self.channels,
                    |request_id| {
                        self.request(RequestBody::FetchSockets {
                            request_id,
                            opts: wire_opts,
                            page: wire_page,
                        })
                    },
                    self.node.request_timeout,
                )
                .await?;
            Ok(answers
                .into_iter()
                .flat_map(|answer| match answer {
                    Response::FetchSockets { sockets, .. } => sockets,
                    _ => Vec::new(),
                })
                .map(socket_info)
                .collect())
        })
    }

    fn all_rooms<'a>(
        &'a self,
        ns: &'a Arc<Namespace>,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move {
            let mut rooms: Vec<String> = local_rooms(ns);
            let answers = self
                .node
                .ask(
                    &self.channels,
                    |request_id| self.request(RequestBody::AllRooms { request_id }),
                    self.node.request_timeout,
                )
                .await?;
            for answer in answers {
                if let Response::AllRooms { rooms: remote, .. } = answer {
                    rooms.extend(remote);
                }
            }
            rooms.sort();
            rooms.dedup();
            Ok(convert::rooms(&rooms))
        })
    }

    fn server_side_emit(&self, _ns: &Arc<Namespace>, args: Vec<Value>) {
        self.publish_request(RequestBody::ServerSideEmit {
            request_id: None,
            data: args.iter().map(to_wire).collect(),
        });
    }

    fn server_side_emit_with_ack<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        args: Vec<Value>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        Box::pin(async move {
            let data: Vec<_> = args.iter().map(to_wire).collect();
            let answers = self
                .node
                .ask(
                    &self.channels,
                    |request_id| {
                        self.request(RequestBody::ServerSideEmit {
                            request_id: Some(request_id),
                            data,
                        })
                    },
                    timeout,
                )
                .await?;
            Ok(answers
                .into_iter()
                .filter_map(|a| match a {
                    // `undefined` has no JSON form; the engine sees `null`.
                    Response::ServerSideEmit { data, .. } => {
                        Some(data.map_or(Value::Null, to_json))
                    }
                    _ => None,
                })
                .collect())
        })
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(
            self.node
                .broker()
                .server_count(Publish::Classic, self.channels.request()),
        )
    }

    fn node_name(&self) -> Option<String> {
        questions::node_name(&self.node.questions)
    }

    fn ask_nodes<'a>(&'a self, question: &'a Value) -> BoxFuture<'a, NodeAnswers> {
        questions::ask(&self.node.questions, question)
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
