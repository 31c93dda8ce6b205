//! The request/answer half of `socket.io-adapter`'s `ClusterAdapter` protocol over
//! pub/sub, which the `redis-streams` and `redis-sharded` adapters share: requests go
//! to a namespace's channel (`socket.io#<nsp>#`), answers to the requester's
//! (`socket.io#<nsp>#<uid>#`). The two differ only in how a message is encoded
//! (`@msgpack/msgpack`, or JSON unless binary) and published (`PUBLISH`, `SPUBLISH`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchboard_engine::adapter::{
    AckReport, AckSink, AdapterError, BroadcastOptions, SocketInfo, SocketsPage,
};
use switchboard_engine::sio::Namespace;
use switchboard_protocol::cluster::streams::{ClusterMessage, MessageBody, private_channel};
use switchboard_protocol::socketio::Packet;

use crate::broker::{Broker, Publish, Reply};
use crate::common::{request_acks, server_ack, sockets_answer};
use crate::convert::{
    ack_argument, ack_payload, count, engine_opts, engine_page, relayable, remote_socket,
    socket_info, to_json, to_wire, wire_opts, wire_page,
};
use crate::requests::{Requests, answer_broadcast_with_ack, collect};

/// Answers to this node's requests.
#[derive(Debug)]
enum Answer {
    Fetched(Vec<SocketInfo>),
    ServerSide(Value),
}

/// One node's side of the exchange: its uid, how it encodes and publishes, and the
/// requests it waits answers for.
pub(crate) struct Exchange {
    uid: String,
    prefix: String,
    request_timeout: Duration,
    publish: Publish,
    encode: fn(&ClusterMessage) -> Vec<u8>,
    requests: Requests<Answer>,
    acks: Requests<AckReport>,
}

impl Exchange {
    pub(crate) fn new(
        uid: String,
        prefix: &str,
        request_timeout: Duration,
        publish: Publish,
        encode: fn(&ClusterMessage) -> Vec<u8>,
    ) -> Self {
        Exchange {
            uid,
            prefix: prefix.to_owned(),
            request_timeout,
            publish,
            encode,
            requests: Requests::default(),
            acks: Requests::default(),
        }
    }

    pub(crate) fn uid(&self) -> &str {
        &self.uid
    }

    /// This node's message in namespace `nsp`.
    pub(crate) fn message(&self, nsp: &str, body: MessageBody) -> ClusterMessage {
        ClusterMessage {
            uid: self.uid.clone(),
            nsp: nsp.to_owned(),
            body,
        }
    }

    /// Publishes `message` on `channel`, in order with this node's other publishes.
    pub(crate) fn publish(&self, broker: &Broker, channel: String, message: &ClusterMessage) {
        let payload = Bytes::from((self.encode)(message));
        match self.publish {
            Publish::Classic => broker.publish(channel, payload),
            Publish::Shard => broker.spublish(channel, payload),
        }
    }

    /// Where answers to `requester`'s request in `nsp` go.
    fn reply(&self, broker: &Arc<Broker>, nsp: &str, requester: &str) -> Reply {
        Reply {
            broker: broker.clone(),
            channel: private_channel(&self.prefix, nsp, requester),
            kind: self.publish,
        }
    }

    /// Serves another node's request, or takes an answer to one of this node's. Gives
    /// `message` back when it is neither (a broadcast, a room operation).
    pub(crate) fn on_message(
        &self,
        broker: &Arc<Broker>,
        ns: &Arc<Namespace>,
        message: ClusterMessage,
    ) -> Option<ClusterMessage> {
        let encode = self.encode;
        let ClusterMessage {
            uid: from,
            nsp,
            body,
        } = message;
        match body {
            MessageBody::Broadcast {
                packet,
                opts,
                request_id: Some(request_id),
            } if relayable(&packet) => {
                let (uid, reply_nsp) = (self.uid.clone(), nsp.clone());
                answer_broadcast_with_ack(
                    ns,
                    packet,
                    engine_opts(&opts),
                    self.reply(broker, &nsp, &from),
                    move |report| {
                        let request_id = request_id.clone();
                        let body = match report {
                            AckReport::ClientCount(n) => MessageBody::BroadcastClientCount {
                                request_id,
                                client_count: n as u64,
                            },
                            AckReport::Ack(p) => MessageBody::BroadcastAck {
                                request_id,
                                packet: ack_argument(p),
                            },
                        };
                        encode(&ClusterMessage {
                            uid: uid.clone(),
                            nsp: reply_nsp.clone(),
                            body,
                        })
                    },
                );
            }
            MessageBody::FetchSockets {
                opts,
                request_id,
                page,
            } => {
                let paged = page.is_some();
                let sockets = ns.fetch_sockets_local_page(&engine_opts(&opts), &engine_page(page));
                let sockets = sockets.into_iter().map(remote_socket).collect();
                let answer = sockets_answer(sockets, paged, |sockets| {
                    let body = MessageBody::FetchSocketsResponse {
                        request_id: request_id.clone(),
                        sockets,
                    };
                    encode(&self.message(&nsp, body))
                });
                if let Some(answer) = answer {
                    self.reply(broker, &nsp, &from).send(Bytes::from(answer));
                }
            }
            MessageBody::ServerSideEmit { request_id, packet } => {
                let ack = request_id.map(|request_id| {
                    let (uid, reply_nsp) = (self.uid.clone(), nsp.clone());
                    server_ack(self.reply(broker, &nsp, &from), move |v| {
                        encode(&ClusterMessage {
                            uid,
                            nsp: reply_nsp,
                            body: MessageBody::ServerSideEmitResponse {
                                request_id,
                                packet: to_wire(&v),
                            },
                        })
                    })
                });
                ns.server_side_event(packet.into_iter().map(to_json).collect(), ack);
            }
            MessageBody::FetchSocketsResponse {
                request_id,
                sockets,
            } => {
                let sockets = sockets.into_iter().map(socket_info).collect();
                self.requests.answer(&request_id, Answer::Fetched(sockets));
            }
            MessageBody::ServerSideEmitResponse { request_id, packet } => {
                self.requests
                    .answer(&request_id, Answer::ServerSide(to_json(packet)));
            }
            MessageBody::BroadcastClientCount {
                request_id,
                client_count,
            } => {
                self.acks
                    .answer(&request_id, AckReport::ClientCount(count(client_count)));
            }
            MessageBody::BroadcastAck { request_id, packet } => {
                self.acks
                    .answer(&request_id, AckReport::Ack(ack_payload(packet)));
            }
            body => {
                return Some(ClusterMessage {
                    uid: from,
                    nsp,
                    body,
                });
            }
        }
        None
    }

    /// Publishes a request on `public` and collects one answer per other node.
    async fn ask(
        &self,
        broker: &Broker,
        nsp: &str,
        public: &str,
        body: impl FnOnce(String) -> MessageBody,
        timeout: Duration,
    ) -> Result<Vec<Answer>, AdapterError> {
        let servers = broker.server_count(self.publish, public).await?;
        if servers <= 1 {
            return Ok(Vec::new());
        }
        let request_id = format!("{:016x}", rand::random::<u64>());
        let (_registration, mut rx) = self.requests.register(request_id.clone());
        let message = self.message(nsp, body(request_id));
        self.publish(broker, public.to_owned(), &message);
        collect(&mut rx, servers - 1, timeout).await
    }

    /// `fetchSockets()` on the other nodes.
    pub(crate) async fn fetch_sockets(
        &self,
        broker: &Broker,
        nsp: &str,
        public: &str,
        opts: &BroadcastOptions,
        page: &SocketsPage,
    ) -> Result<Vec<SocketInfo>, AdapterError> {
        let wire_opts = wire_opts(opts);
        let wire_page = wire_page(page);
        let timeout = opts.flags.timeout.unwrap_or(self.request_timeout);
        let answers = self
            .ask(
                broker,
                nsp,
                public,
                |request_id| MessageBody::FetchSockets {
                    opts: wire_opts,
                    request_id,
                    page: wire_page,
                },
                timeout,
            )
            .await?;
        Ok(answers
            .into_iter()
            .flat_map(|answer| match answer {
                Answer::Fetched(sockets) => sockets,
                Answer::ServerSide(_) => Vec::new(),
            })
            .collect())
    }

    /// `serverSideEmit()` without an ack.
    pub(crate) fn server_side_emit(
        &self,
        broker: &Broker,
        nsp: &str,
        public: &str,
        args: &[Value],
    ) {
        let message = self.message(
            nsp,
            MessageBody::ServerSideEmit {
                request_id: None,
                packet: args.iter().map(to_wire).collect(),
            },
        );
        self.publish(broker, public.to_owned(), &message);
    }

    /// `serverSideEmit()` with an ack: one answer per other node, until `timeout`.
    pub(crate) async fn server_side_emit_with_ack(
        &self,
        broker: &Broker,
        nsp: &str,
        public: &str,
        args: &[Value],
        timeout: Duration,
    ) -> Result<Vec<Value>, AdapterError> {
        let answers = self
            .ask(
                broker,
                nsp,
                public,
                |request_id| MessageBody::ServerSideEmit {
                    request_id: Some(request_id),
                    packet: args.iter().map(to_wire).collect(),
                },
                timeout,
            )
            .await?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                Answer::ServerSide(v) => Some(v),
                Answer::Fetched(_) => None,
            })
            .collect())
    }

    /// A broadcast with acks to the other nodes, on `public`; their reports go to `sink`.
    pub(crate) fn broadcast_with_ack(
        &self,
        broker: &Broker,
        nsp: &str,
        public: &str,
        packet: &Packet,
        opts: &BroadcastOptions,
        sink: &AckSink,
    ) {
        let publish = |request_id| {
            let body = MessageBody::Broadcast {
                packet: packet.clone(),
                opts: wire_opts(opts),
                request_id: Some(request_id),
            };
            self.publish(broker, public.to_owned(), &self.message(nsp, body));
        };
        let request_id = format!("{:016x}", rand::random::<u64>());
        request_acks(
            &self.acks,
            request_id,
            publish,
            opts,
            sink,
            self.request_timeout,
        );
    }
}
