//! The few Engine.IO v4 / Socket.IO v5 text packets the workload uses, the benchmark
//! payload that carries its publish timestamp, and the two ways servers are asked to
//! join and publish ([`Dialect`]). Pure byte work, no IO.

use std::fmt::Write as _;

/// Path every server is reached on (websocket transport only, no polling first).
pub(crate) const PATH: &str = "/socket.io/?EIO=4&transport=websocket";
/// Event name the publisher broadcasts; receivers count only this event.
pub(crate) const BENCH_EVENT: &str = "bench";
/// Prefix of a delivered benchmark event on the wire.
const DELIVERY_PREFIX: &[u8] = b"42[\"bench\",";
/// Event name of the recovery storm's numbered events.
pub(crate) const NUMBERED_EVENT: &str = "storm";
/// Prefix of a delivered numbered event on the wire.
const NUMBERED_PREFIX: &[u8] = b"42[\"storm\",";
/// Payload size of a published event, as the issue asks (100-byte events).
pub(crate) const PAYLOAD_BYTES: usize = 100;
/// Digits of the microsecond timestamp inside a payload.
const STAMP_DIGITS: usize = 12;

/// What a received Engine.IO/Socket.IO text packet means to a client. Borrowed slices
/// point into the read buffer: nothing is copied per message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// Engine.IO open packet (`0{...}`).
    Open,
    /// Engine.IO ping; must be answered with a pong (`3`).
    Ping,
    /// Socket.IO namespace connect accepted (`40{...}`): its JSON payload
    /// ([`ConnectAnswer::parse`] reads it).
    Connected(&'a [u8]),
    /// A benchmark delivery: its arguments after the event name, as on the wire
    /// (`"#000000123456#xxx…"]`); [`Dialect::stamp`] reads the timestamp.
    Delivery(&'a [u8]),
    /// A numbered event of the recovery storm (`42["storm",<n>,"<offset>"]`): its number
    /// and its recovery offset (the last argument, unquoted; empty without recovery).
    Numbered(u64, &'a [u8]),
    /// An acknowledgement (`43<id>[...]`): its id and its arguments (`[true]`).
    Ack(u64, &'a [u8]),
    /// Connect refused, disconnect, or close from the server.
    Refused,
    /// Anything else (other events such as `auth`, noops).
    Other,
}

/// Classifies one text packet.
pub(crate) fn classify(packet: &[u8]) -> Incoming<'_> {
    match packet {
        [b'4', b'2', ..] if packet.starts_with(DELIVERY_PREFIX) => {
            Incoming::Delivery(&packet[DELIVERY_PREFIX.len()..])
        }
        [b'4', b'2', ..] if packet.starts_with(NUMBERED_PREFIX) => {
            numbered(&packet[NUMBERED_PREFIX.len()..]).unwrap_or(Incoming::Other)
        }
        [b'4', b'3', rest @ ..] => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            parse_id(&rest[..digits])
                .map_or(Incoming::Other, |id| Incoming::Ack(id, &rest[digits..]))
        }
        [b'4', b'0', rest @ ..] => Incoming::Connected(rest),
        [b'4', b'4', ..] | [b'4', b'1', ..] | [b'1', ..] => Incoming::Refused,
        [b'2'] => Incoming::Ping,
        [b'0', ..] => Incoming::Open,
        _ => Incoming::Other,
    }
}

/// A numbered event from what follows its name: `<n>]` or `<n>,"<offset>"]`.
fn numbered(rest: &[u8]) -> Option<Incoming<'_>> {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = parse_id(&rest[..digits])?;
    let offset = match &rest[digits..] {
        b"]" => &[][..],
        tail => tail.strip_prefix(b",\"")?.strip_suffix(b"\"]")?,
    };
    Some(Incoming::Numbered(n, offset))
}

/// The decimal id of an ack packet.
fn parse_id(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Timestamp from a payload argument `"#<12 digits>#xxx..."`.
fn parse_stamp(arg: &[u8]) -> Option<u64> {
    let digits = arg.get(2..2 + STAMP_DIGITS)?;
    (arg.starts_with(b"\"#")).then_some(())?;
    digits.iter().try_fold(0u64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Benchmark payload of exactly [`PAYLOAD_BYTES`] characters carrying `stamp_us`.
pub(crate) fn payload(stamp_us: u64) -> String {
    let mut out = String::with_capacity(PAYLOAD_BYTES);
    let _ = write!(out, "#{stamp_us:0width$}#", width = STAMP_DIGITS);
    while out.len() < PAYLOAD_BYTES {
        out.push('x');
    }
    out
}

/// `42<id>["join","room"]`: the same packet for every server (the fixture's `join`
/// handler, the rules' default `join_event`).
pub(crate) fn join(id: u64, room: &str) -> String {
    format!("42{id}[\"join\",\"{room}\"]")
}

/// `42<id>["broadcast","room","storm",<n>]`: numbered event `n` to `room` through the
/// `broadcast` handler (the fixture's; the recovery storm runs on it only), acked under
/// `id`.
pub(crate) fn numbered_broadcast(id: u64, room: &str, n: u64) -> String {
    format!("42{id}[\"broadcast\",\"{room}\",\"{NUMBERED_EVENT}\",{n}]")
}

/// `40{"pid":…,"offset":…}`: a CONNECT that asks to recover session `pid` from the
/// event at `offset` (the last one received; none when nothing was).
pub(crate) fn recovery_connect(pid: &str, offset: Option<&str>) -> String {
    let claim = match offset {
        Some(offset) => serde_json::json!({ "pid": pid, "offset": offset }),
        None => serde_json::json!({ "pid": pid }),
    };
    format!("40{claim}")
}

/// What a server answers to a CONNECT (`40{"sid":…,"pid":…}`): the socket id, and the
/// recovery id when connection state recovery is on. A server that resumed a session
/// answers with the session's old `sid`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct ConnectAnswer {
    /// Socket id.
    #[serde(default)]
    pub(crate) sid: Option<String>,
    /// Private session id (recovery on only).
    #[serde(default)]
    pub(crate) pid: Option<String>,
}

impl ConnectAnswer {
    /// Reads the answer's payload; anything unreadable is an answer without ids.
    pub(crate) fn parse(payload: &[u8]) -> ConnectAnswer {
        serde_json::from_slice(payload).unwrap_or_default()
    }
}

/// How a server is asked to join rooms and to publish, and how it delivers: the only
/// part of the workload that differs between servers. Room names are plain (`fanout`,
/// `r17`): nothing here escapes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `protocol_fixture cluster` and every server written to its contract (`bench/peers`,
    /// the bare broadcaster): `join` acks `true`; a publisher in no room calls
    /// `broadcast(room, event, payload)`, acked `true`; members receive `(event, payload)`.
    Handlers,
    /// `switchboard serve` with namespace rules: `join` (the rooms' `join_event`) acks
    /// `{"ok":true}`; the publisher, a member of the room, emits the event itself as
    /// `(event, room, payload)`; a `relay` rule sends it unchanged to the room's other
    /// members, who receive `(event, room, payload)`, and acks `{"ok":true}`.
    Rules,
}

impl Dialect {
    /// Arguments of a successful `join`'s or publish's acknowledgement, as on the wire.
    pub(crate) fn ok_ack(self) -> &'static [u8] {
        match self {
            Dialect::Handlers => b"[true]",
            Dialect::Rules => b"[{\"ok\":true}]",
        }
    }

    /// Whether a publisher must be a member of a room to publish to it (relay rules
    /// refuse a sender that is not in the room).
    pub(crate) fn publisher_joins(self) -> bool {
        self == Dialect::Rules
    }

    /// The packet that publishes one benchmark event stamped `stamp_us` to `room`, acked
    /// under `id`.
    pub(crate) fn publish(self, id: u64, room: &str, stamp_us: u64) -> String {
        let payload = payload(stamp_us);
        match self {
            Dialect::Handlers => {
                format!("42{id}[\"broadcast\",\"{room}\",\"{BENCH_EVENT}\",\"{payload}\"]")
            }
            Dialect::Rules => format!("42{id}[\"{BENCH_EVENT}\",\"{room}\",\"{payload}\"]"),
        }
    }

    /// The publish timestamp (µs) of a delivery, from its arguments after the event name
    /// ([`Incoming::Delivery`]): the payload is the first argument, or the second after
    /// the room name a relayed event keeps.
    pub(crate) fn stamp(self, args: &[u8]) -> Option<u64> {
        match self {
            Dialect::Handlers => parse_stamp(args),
            Dialect::Rules => parse_stamp(skip_string(args)?.strip_prefix(b",")?),
        }
    }
}

/// What follows the JSON string at the start of `args` (escapes honoured).
fn skip_string(args: &[u8]) -> Option<&[u8]> {
    let rest = args.strip_prefix(b"\"")?;
    let mut escaped = false;
    for (i, &b) in rest.iter().enumerate() {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return Some(&rest[i + 1..]),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp a delivery of `packet` carries under `dialect`.
    fn stamp_of(dialect: Dialect, packet: &str) -> Option<u64> {
        match classify(packet.as_bytes()) {
            Incoming::Delivery(args) => dialect.stamp(args),
            other => panic!("not a delivery: {other:?}"),
        }
    }

    #[test]
    fn deliveries_carry_their_stamp() {
        let packet = format!("42[\"bench\",\"{}\"]", payload(123_456));
        assert_eq!(payload(1).len(), PAYLOAD_BYTES);
        assert_eq!(stamp_of(Dialect::Handlers, &packet), Some(123_456));
    }

    #[test]
    fn relayed_deliveries_carry_their_stamp_after_the_room() {
        let packet = format!("42[\"bench\",\"fanout\",\"{}\"]", payload(123_456));
        assert_eq!(stamp_of(Dialect::Rules, &packet), Some(123_456));
        // A room name with an escaped quote is skipped whole.
        let packet = format!("42[\"bench\",\"a\\\"b\",\"{}\"]", payload(7));
        assert_eq!(stamp_of(Dialect::Rules, &packet), Some(7));
        // Each dialect reads only its own shape.
        let handlers = format!("42[\"bench\",\"{}\"]", payload(5));
        assert_eq!(stamp_of(Dialect::Rules, &handlers), None);
        let relayed = format!("42[\"bench\",\"fanout\",\"{}\"]", payload(5));
        assert_eq!(stamp_of(Dialect::Handlers, &relayed), None);
    }

    #[test]
    fn control_packets_are_recognised() {
        assert_eq!(classify(b"2"), Incoming::Ping);
        assert_eq!(classify(b"0{\"sid\":\"a\"}"), Incoming::Open);
        assert_eq!(
            classify(b"40{\"sid\":\"b\"}"),
            Incoming::Connected(b"{\"sid\":\"b\"}")
        );
        assert_eq!(classify(b"4317[true]"), Incoming::Ack(17, b"[true]"));
        assert_eq!(
            classify(b"433[{\"ok\":true}]"),
            Incoming::Ack(3, Dialect::Rules.ok_ack())
        );
        assert_eq!(classify(b"43[true]"), Incoming::Other);
        assert_eq!(classify(b"44{\"message\":\"no\"}"), Incoming::Refused);
        assert_eq!(classify(b"42[\"auth\",{}]"), Incoming::Other);
    }

    #[test]
    fn numbered_events_carry_their_number_and_offset() {
        assert_eq!(
            classify(b"42[\"storm\",17,\"1700000000000-3\"]"),
            Incoming::Numbered(17, b"1700000000000-3")
        );
        assert_eq!(classify(b"42[\"storm\",0]"), Incoming::Numbered(0, b""));
        assert_eq!(classify(b"42[\"storm\",\"x\"]"), Incoming::Other);
        assert_eq!(classify(b"42[\"storm\",1,2]"), Incoming::Other);
        let packet = numbered_broadcast(4, "storm-3", 4);
        assert_eq!(packet, "424[\"broadcast\",\"storm-3\",\"storm\",4]");
    }

    #[test]
    fn recovery_connects_and_answers() {
        assert_eq!(
            recovery_connect("p\"1", Some("9-0")),
            "40{\"pid\":\"p\\\"1\",\"offset\":\"9-0\"}"
        );
        assert_eq!(recovery_connect("p", None), "40{\"pid\":\"p\"}");
        let answer = ConnectAnswer::parse(b"{\"sid\":\"s1\",\"pid\":\"p1\"}");
        assert_eq!(answer.sid.as_deref(), Some("s1"));
        assert_eq!(answer.pid.as_deref(), Some("p1"));
        assert_eq!(ConnectAnswer::parse(b""), ConnectAnswer::default());
    }

    #[test]
    fn publish_packets_name_room_and_event() {
        let packet = Dialect::Handlers.publish(5, "r1", 9);
        assert!(packet.starts_with("425[\"broadcast\",\"r1\",\"bench\",\"#000000000009#"));
        let packet = Dialect::Rules.publish(5, "r1", 9);
        assert!(packet.starts_with("425[\"bench\",\"r1\",\"#000000000009#"));
        // What a relay rule sends on is the published packet without its ack id.
        let delivered = packet.replacen("425", "42", 1);
        assert_eq!(stamp_of(Dialect::Rules, &delivered), Some(9));
    }

    #[test]
    fn ok_acks_and_publisher_membership_differ_by_dialect() {
        assert_eq!(Dialect::Handlers.ok_ack(), b"[true]");
        assert_eq!(Dialect::Rules.ok_ack(), b"[{\"ok\":true}]");
        assert!(!Dialect::Handlers.publisher_joins());
        assert!(Dialect::Rules.publisher_joins());
    }
}
