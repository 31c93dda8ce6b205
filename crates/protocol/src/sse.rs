//! Server-Sent Events framing (WHATWG HTML, "Server-sent events", §9.2): what a
//! Socket.IO event packet becomes on an SSE stream, and the stream's own lines.
//!
//! An event `42/chat,["message",{"text":"hi"},"1733-7"]` (with connection state
//! recovery, whose offset is the last argument) becomes
//!
//! ```text
//! id: 1733-7
//! event: message
//! data: [{"text":"hi"}]
//!
//! ```
//!
//! Pure: text in, text out. The engine's SSE transport calls it once per frame.

use serde_json::value::RawValue;

/// A Socket.IO event read from an encoded frame, ready to be written as one SSE
/// event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The recovery offset (the packet's last argument, when offsets are on).
    pub id: Option<String>,
    /// The event name.
    pub name: String,
    /// The remaining arguments as a JSON array.
    pub data: String,
    /// Binary attachments that follow the frame (a binary event); SSE carries text
    /// only, so such an event is reported, not delivered (see [`write_skipped`]).
    pub attachments: usize,
}

/// What an encoded engine text frame (`4` + a Socket.IO packet) is to an SSE stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseFrame {
    /// An event (`2`) or binary event (`5`).
    Event(SseEvent),
    /// The server disconnected the socket from its namespace (`1`).
    Disconnect,
    /// Anything else: CONNECT answers, acknowledgements, or a frame that does not
    /// parse as an event (never produced by this server).
    Other,
}

/// Reads one engine text frame. `offsets`: connection state recovery is on, so every
/// broadcast event carries its offset as its last (string) argument.
pub fn parse_frame(frame: &str, offsets: bool) -> SseFrame {
    let Some(packet) = frame.strip_prefix('4') else {
        return SseFrame::Other;
    };
    let mut chars = packet.char_indices();
    let (binary, mut rest) = match chars.next() {
        Some((_, '2')) => (false, &packet[1..]),
        Some((_, '5')) => (true, &packet[1..]),
        Some((_, '1')) => return SseFrame::Disconnect,
        _ => return SseFrame::Other,
    };
    let mut attachments = 0;
    if binary {
        let Some((count, after)) = rest.split_once('-') else {
            return SseFrame::Other;
        };
        let Ok(n) = count.parse::<usize>() else {
            return SseFrame::Other;
        };
        attachments = n;
        rest = after;
    }
    if rest.starts_with('/') {
        let Some((_, after)) = rest.split_once(',') else {
            return SseFrame::Other;
        };
        rest = after;
    }
    let json_start = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let json = &rest[json_start..];
    match parse_args(json, offsets) {
        Some((id, name, data)) => SseFrame::Event(SseEvent {
            id,
            name,
            data,
            attachments,
        }),
        None => SseFrame::Other,
    }
}

/// The event name, the offset (if `offsets`) and the other arguments of an event's
/// JSON array.
fn parse_args(json: &str, offsets: bool) -> Option<(Option<String>, String, String)> {
    let args: Vec<&RawValue> = serde_json::from_str(json).ok()?;
    let (first, mut rest) = args.split_first()?;
    let name: String = serde_json::from_str(first.get()).ok()?;
    let mut id = None;
    if offsets
        && let Some((last, before)) = rest.split_last()
        && let Ok(offset) = serde_json::from_str::<String>(last.get())
    {
        id = Some(offset);
        rest = before;
    }
    let mut data = String::with_capacity(json.len());
    data.push('[');
    for (i, arg) in rest.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push_str(arg.get());
    }
    data.push(']');
    Some((id, name, data))
}

/// Whether `text` can be the value of an SSE field: no line break (which would end
/// the field) and no NUL (which the `id` field refuses).
fn is_field_value(text: &str) -> bool {
    !text.contains(['\n', '\r', '\0'])
}

/// Writes `event` as one SSE event. An event name holding a line break has it
/// replaced by a space (a field cannot span lines); an id that could not be a field
/// is left out. Data on several lines is written as several `data:` lines, which the
/// client joins with `\n` (JSON whitespace).
pub fn write_event(out: &mut String, id: Option<&str>, name: &str, data: &str) {
    if let Some(id) = id.filter(|id| is_field_value(id)) {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    if is_field_value(name) {
        out.push_str(name);
    } else {
        out.extend(name.chars().map(|c| match c {
            '\n' | '\r' | '\0' => ' ',
            c => c,
        }));
    }
    out.push('\n');
    for line in data.split(['\n', '\r']) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// The event name of the server's own notices on an SSE stream; application events
/// should not use the `switchboard:` prefix.
pub mod notice {
    /// Sent once, after connecting with a `Last-Event-ID`: whether the missed events
    /// were replayed (`{"recovered":true,"replayed":N}`) or could not be
    /// (`{"recovered":false,"reason":"…"}`).
    pub const RECOVERY: &str = "switchboard:recovery";
    /// An event that an SSE stream cannot carry (binary attachments), in its place:
    /// `{"event":"<name>","reason":"binary"}`, with the event's id.
    pub const SKIPPED: &str = "switchboard:skipped";
    /// The server closed the stream: `{"reason":"<disconnect reason>"}`.
    pub const CLOSE: &str = "switchboard:close";
}

/// Writes the notice that replaces a binary event, keeping its id so a reconnect
/// resumes after it.
pub fn write_skipped(out: &mut String, event: &SseEvent) {
    let data = serde_json::json!({ "event": event.name, "reason": "binary" }).to_string();
    write_event(out, event.id.as_deref(), notice::SKIPPED, &data);
}

/// A heartbeat: a comment line, which clients ignore and proxies see as traffic.
pub const HEARTBEAT: &str = ":\n\n";

/// The reconnection delay the client should use, in milliseconds.
pub fn write_retry(out: &mut String, millis: u128) {
    out.push_str("retry: ");
    out.push_str(&millis.to_string());
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(frame: &str, offsets: bool) -> SseEvent {
        match parse_frame(frame, offsets) {
            SseFrame::Event(e) => e,
            other => panic!("{frame}: {other:?}"),
        }
    }

    #[test]
    fn an_event_with_an_offset_becomes_id_event_and_data() {
        let e = event(r#"42/chat,["message",{"text":"hi"},"1733-7"]"#, true);
        let mut out = String::new();
        write_event(&mut out, e.id.as_deref(), &e.name, &e.data);
        assert_eq!(
            out,
            "id: 1733-7\nevent: message\ndata: [{\"text\":\"hi\"}]\n\n"
        );
    }

    #[test]
    fn without_offsets_the_last_argument_is_data() {
        let e = event(r#"42["tick",1,"x"]"#, false);
        assert_eq!(e.id, None);
        assert_eq!(e.data, r#"[1,"x"]"#);
        let e = event(r#"42["tick"]"#, true);
        assert_eq!((e.id, e.data.as_str()), (None, "[]"));
        // A non-string last argument is not an offset.
        let e = event(r#"42["tick",7]"#, true);
        assert_eq!((e.id, e.data.as_str()), (None, "[7]"));
    }

    #[test]
    fn ack_ids_namespaces_and_binary_counts_are_skipped() {
        let e = event(r#"42/a,12["ev","o-1"]"#, true);
        assert_eq!((e.name.as_str(), e.id.as_deref()), ("ev", Some("o-1")));
        let e = event(
            r#"451-/a,["bin",{"_placeholder":true,"num":0},"o-2"]"#,
            true,
        );
        assert_eq!(e.attachments, 1);
        assert_eq!(e.id.as_deref(), Some("o-2"));
    }

    #[test]
    fn other_packets_are_not_events() {
        assert_eq!(parse_frame("41/chat,", false), SseFrame::Disconnect);
        for frame in [
            "40/chat,{\"sid\":\"x\"}",
            "43/a,1[]",
            "2",
            "1",
            "6",
            "4",
            "42",
            "42{}",
            "42[1]",
        ] {
            assert_ne!(
                std::mem::discriminant(&parse_frame(frame, true)),
                std::mem::discriminant(&SseFrame::Event(event(r#"42["a"]"#, false))),
                "{frame}"
            );
        }
    }

    #[test]
    fn line_breaks_cannot_forge_fields() {
        let mut out = String::new();
        write_event(&mut out, Some("1\nevent: x"), "a\nid: 9", "[1,\n2]");
        assert_eq!(out, "event: a id: 9\ndata: [1,\ndata: 2]\n\n");
    }

    #[test]
    fn event_names_with_escapes_are_decoded() {
        let e = event(r#"42["a\u0041\"b"]"#, false);
        assert_eq!(e.name, "aA\"b");
    }
}
