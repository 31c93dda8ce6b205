//! The few Engine.IO v4 / Socket.IO v5 text packets the workload uses, and the benchmark
//! payload that carries its publish timestamp. Pure byte work, no IO.

use std::fmt::Write as _;

/// Path every server is reached on (websocket transport only, no polling first).
pub(crate) const PATH: &str = "/socket.io/?EIO=4&transport=websocket";
/// Event name the publisher broadcasts; receivers count only this event.
pub(crate) const BENCH_EVENT: &str = "bench";
/// Prefix of a delivered benchmark event on the wire.
const DELIVERY_PREFIX: &[u8] = b"42[\"bench\",";
/// Payload size of a published event, as the issue asks (100-byte events).
pub(crate) const PAYLOAD_BYTES: usize = 100;
/// Digits of the microsecond timestamp inside a payload.
const STAMP_DIGITS: usize = 12;

/// What a received Engine.IO/Socket.IO text packet means to a client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// Engine.IO open packet (`0{...}`).
    Open,
    /// Engine.IO ping; must be answered with a pong (`3`).
    Ping,
    /// Socket.IO namespace connect accepted (`40{...}`).
    Connected,
    /// A benchmark delivery, with its publish timestamp (µs) if it parsed.
    Delivery(Option<u64>),
    /// An acknowledgement (`43<id>[...]`).
    Ack(u64),
    /// Connect refused, disconnect, or close from the server.
    Refused,
    /// Anything else (other events such as `auth`, noops).
    Other,
}

/// Classifies one text packet.
pub(crate) fn classify(packet: &[u8]) -> Incoming {
    match packet {
        [b'4', b'2', ..] if packet.starts_with(DELIVERY_PREFIX) => {
            Incoming::Delivery(parse_stamp(&packet[DELIVERY_PREFIX.len()..]))
        }
        [b'4', b'3', rest @ ..] => parse_id(rest).map_or(Incoming::Other, Incoming::Ack),
        [b'4', b'0', ..] => Incoming::Connected,
        [b'4', b'4', ..] | [b'4', b'1', ..] | [b'1', ..] => Incoming::Refused,
        [b'2'] => Incoming::Ping,
        [b'0', ..] => Incoming::Open,
        _ => Incoming::Other,
    }
}

/// Leading decimal id of an ack packet body.
fn parse_id(rest: &[u8]) -> Option<u64> {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
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

/// `42<id>["join","room"]`.
pub(crate) fn join(id: u64, room: &str) -> String {
    format!("42{id}[\"join\",\"{room}\"]")
}

/// `42<id>["broadcast","room","bench","<payload>"]`: the publish path.
pub(crate) fn broadcast(id: u64, room: &str, stamp_us: u64) -> String {
    let payload = payload(stamp_us);
    format!("42{id}[\"broadcast\",\"{room}\",\"{BENCH_EVENT}\",\"{payload}\"]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_carry_their_stamp() {
        let packet = format!("42[\"bench\",\"{}\"]", payload(123_456));
        assert_eq!(payload(1).len(), PAYLOAD_BYTES);
        assert_eq!(
            classify(packet.as_bytes()),
            Incoming::Delivery(Some(123_456))
        );
    }

    #[test]
    fn control_packets_are_recognised() {
        assert_eq!(classify(b"2"), Incoming::Ping);
        assert_eq!(classify(b"0{\"sid\":\"a\"}"), Incoming::Open);
        assert_eq!(classify(b"40{\"sid\":\"b\"}"), Incoming::Connected);
        assert_eq!(classify(b"4317[true]"), Incoming::Ack(17));
        assert_eq!(classify(b"44{\"message\":\"no\"}"), Incoming::Refused);
        assert_eq!(classify(b"42[\"auth\",{}]"), Incoming::Other);
    }

    #[test]
    fn broadcast_packet_names_room_and_event() {
        let packet = broadcast(5, "r1", 9);
        assert!(packet.starts_with("425[\"broadcast\",\"r1\",\"bench\",\"#000000000009#"));
    }
}
