//! The Server-Sent Events framing of an event: the frame is the server's own encoding,
//! but its event name and arguments are whatever a client relayed, so they must never
//! break out of the one SSE event they become.

use switchboard_protocol::sse::{self, SseFrame};

/// First byte: bit 0 says whether offsets are on; the rest is an engine text frame
/// (`42…`). Whatever the name, id and data hold, the written event is one block:
/// every line is an `id:`, `event:` or `data:` field, the block ends with the one
/// blank line, the id (when written) and the name are the parsed ones less line
/// breaks, and the `data:` lines join back to the data.
pub fn sse_frame(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let SseFrame::Event(event) = sse::parse_frame(&text, flags & 1 == 1) else {
        return;
    };
    let mut out = String::new();
    if event.attachments > 0 {
        sse::write_skipped(&mut out, &event);
    } else {
        sse::write_event(&mut out, event.id.as_deref(), &event.name, &event.data);
    }
    let block = out
        .strip_suffix("\n\n")
        .unwrap_or_else(|| panic!("an event ends with a blank line: {out:?}"));
    assert!(!block.contains("\n\n"), "one event, one block: {out:?}");
    assert!(!block.contains('\r'), "no stray line breaks: {out:?}");
    let mut data_lines = Vec::new();
    for line in block.split('\n') {
        if let Some(id) = line.strip_prefix("id: ") {
            assert_eq!(Some(id), event.id.as_deref(), "{out:?}");
        } else if let Some(name) = line.strip_prefix("event: ") {
            if event.attachments == 0 {
                let clean: String = event
                    .name
                    .chars()
                    .map(|c| {
                        if matches!(c, '\n' | '\r' | '\0') {
                            ' '
                        } else {
                            c
                        }
                    })
                    .collect();
                assert_eq!(name, clean, "{out:?}");
            }
        } else if let Some(data) = line.strip_prefix("data: ") {
            data_lines.push(data);
        } else {
            panic!("a line that is no field: {line:?} in {out:?}");
        }
    }
    if event.attachments == 0 {
        // Each line break (CR or LF) ends one `data:` line; the client joins them with LF.
        assert_eq!(
            data_lines.join("\n"),
            event.data.replace('\r', "\n"),
            "{out:?}"
        );
        // The data is the JSON array of the remaining arguments, as written: valid JSON
        // syntax, copied, never re-read as numbers (`1E0777` stays what it was).
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert!(raw.get().starts_with('['), "{out:?}");
    }
}
