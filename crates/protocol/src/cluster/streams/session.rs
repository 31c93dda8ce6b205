//! The connection-state-recovery session the streams adapter stores in Redis, and which
//! missed broadcasts a restored socket gets.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::cluster::msgpack::{self, MsgValue};
use crate::cluster::opts::BroadcastOpts;
use crate::cluster::read::{Obj, strings, take_raw};
use crate::cluster::{CodecError, js};

/// Default key prefix of stored sessions (`sessionKeyPrefix` option).
pub const DEFAULT_SESSION_KEY_PREFIX: &str = "sio:session:";

/// The key a session is stored at: `<prefix><pid>`, e.g. `sio:session:<pid>`.
pub fn session_key(prefix: &str, pid: &str) -> String {
    format!("{prefix}{pid}")
}

/// The extra field of a stored session that holds the rooms its socket joined late: a
/// map of room to the stream id it joined at. Switchboard's; Node ignores it.
pub const JOINED_FIELD: &str = "joined";

/// The extra field of a stored session that holds the rooms its socket left: an array
/// of `[room, joined at, left at]` stream ids. Switchboard's; Node ignores it.
pub const LEFT_FIELD: &str = "left";

/// When a stored session's socket was in the rooms whose events its replays judge by
/// time (rather than by the rooms of now, as Node does), as stream ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMemberships {
    /// Rooms among the session's that the socket joined after it connected, each with
    /// the position it joined at: a replay gives a room's events only after it.
    pub joined: Vec<(String, String)>,
    /// Rooms it was in and left, each with the positions it joined (or connected) and
    /// left at: their events in between still count.
    pub left: Vec<(String, String, String)>,
}

/// The session of a disconnected socket, as `persistSession` stores it: base64 of the
/// `@msgpack/msgpack` encoding of `{sid, pid, rooms, data}`. Node restores only those
/// four fields and ignores any other, so [`PersistedSession::extra`] can carry more
/// (written after them, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedSession {
    /// The socket id, reused on recovery.
    pub sid: String,
    /// The private session id the client presents to recover.
    pub pid: String,
    /// The rooms the socket was in.
    pub rooms: Vec<String>,
    /// `socket.data`.
    pub data: MsgValue,
    /// Further fields, in order (Node ignores them).
    pub extra: Vec<(String, MsgValue)>,
}

impl PersistedSession {
    /// The value to `SET` (with `PX` = the server's `maxDisconnectionDuration`).
    pub fn encode(&self) -> String {
        let mut entries = vec![
            ("sid".into(), self.sid.as_str().into()),
            ("pid".into(), self.pid.as_str().into()),
            ("rooms".into(), strings(&self.rooms)),
            ("data".into(), self.data.clone()),
        ];
        entries.extend(
            self.extra
                .iter()
                .map(|(k, v)| (MsgValue::from(k.as_str()), v.clone())),
        );
        STANDARD.encode(msgpack::encode_msgpack(&MsgValue::Map(entries)))
    }

    /// The extra field `key` (the last one of that name), if the session has it.
    pub fn extra(&self, key: &str) -> Option<&MsgValue> {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The memberships the session carries ([`JOINED_FIELD`], [`LEFT_FIELD`]); entries
    /// not shaped as written are left out (their rooms are then judged as Node judges
    /// them), and so are both fields in a session Node wrote.
    pub fn memberships(&self) -> SessionMemberships {
        let text = |v: &MsgValue| v.as_str().map(str::to_owned);
        let joined = match self.extra(JOINED_FIELD) {
            Some(MsgValue::Map(entries)) => entries
                .iter()
                .filter_map(|(room, at)| Some((text(room)?, text(at)?)))
                .collect(),
            _ => Vec::new(),
        };
        let left = match self.extra(LEFT_FIELD) {
            Some(MsgValue::Array(entries)) => entries
                .iter()
                .filter_map(|entry| match entry {
                    MsgValue::Array(parts) => match parts.as_slice() {
                        [room, from, until] => Some((text(room)?, text(from)?, text(until)?)),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        SessionMemberships { joined, left }
    }

    /// Sets the memberships the session carries, replacing any it had; an empty list
    /// writes no field.
    pub fn set_memberships(&mut self, m: SessionMemberships) {
        self.extra
            .retain(|(k, _)| k != JOINED_FIELD && k != LEFT_FIELD);
        if !m.joined.is_empty() {
            let joined = m
                .joined
                .into_iter()
                .map(|(room, at)| (MsgValue::Str(room), MsgValue::Str(at)))
                .collect();
            self.extra
                .push((JOINED_FIELD.to_owned(), MsgValue::Map(joined)));
        }
        if !m.left.is_empty() {
            let left = m
                .left
                .into_iter()
                .map(|(room, from, until)| {
                    MsgValue::Array(vec![
                        MsgValue::Str(room),
                        MsgValue::Str(from),
                        MsgValue::Str(until),
                    ])
                })
                .collect();
            self.extra
                .push((LEFT_FIELD.to_owned(), MsgValue::Array(left)));
        }
    }

    /// Reads a stored session (the value `GET` returned).
    pub fn decode(stored: impl AsRef<[u8]>) -> Result<Self, CodecError> {
        let bytes = STANDARD
            .decode(stored.as_ref().trim_ascii_end())
            .map_err(|_| CodecError::Base64)?;
        let mut value = msgpack::decode(&bytes)?;
        let obj = Obj::new(&value, "session")?;
        let sid = obj.str("sid")?;
        let pid = obj.str("pid")?;
        let rooms = obj.rooms("rooms")?;
        let data = take_raw(&mut value, "data").unwrap_or_default();
        let MsgValue::Map(entries) = value else {
            return Err(CodecError::Field("session"));
        };
        let extra = entries
            .into_iter()
            .map(|(k, v)| (js::property_key(&k), v))
            .filter(|(k, _)| !matches!(k.as_str(), "sid" | "pid" | "rooms" | "data"))
            .collect();
        Ok(PersistedSession {
            sid,
            pid,
            rooms,
            data,
            extra,
        })
    }
}

/// Whether a socket that was in `session_rooms` should get a broadcast aimed at `opts`
/// on recovery: some room targeted (or none targeted at all), and no room excluded.
pub fn should_include_packet(session_rooms: &[String], opts: &BroadcastOpts) -> bool {
    let included = opts.rooms.is_empty() || session_rooms.iter().any(|r| opts.rooms.contains(r));
    let not_excluded = session_rooms.iter().all(|r| !opts.except.contains(r));
    included && not_excluded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> PersistedSession {
        PersistedSession {
            sid: "sid1".into(),
            pid: "pid1".into(),
            rooms: vec!["sid1".into(), "room".into()],
            data: MsgValue::Map(vec![("user".into(), "ann".into())]),
            extra: vec![("offset".into(), "1-0".into())],
        }
    }

    #[test]
    fn round_trip_with_extra_fields() {
        let s = session();
        let stored = s.encode();
        assert_eq!(PersistedSession::decode(stored.as_bytes()), Ok(s));
        assert_eq!(
            session_key(DEFAULT_SESSION_KEY_PREFIX, "p"),
            "sio:session:p"
        );
    }

    #[test]
    fn memberships_round_trip_in_their_extra_fields() {
        let mut s = session();
        assert_eq!(
            s.memberships(),
            SessionMemberships::default(),
            "Node wrote none"
        );
        let m = SessionMemberships {
            joined: vec![("late".into(), "5-0".into())],
            left: vec![("gone".into(), "1-0".into(), "7-1".into())],
        };
        s.set_memberships(m.clone());
        let back = PersistedSession::decode(s.encode()).unwrap();
        assert_eq!(back.memberships(), m);
        assert_eq!(back.extra("offset"), Some(&MsgValue::from("1-0")), "kept");
        // Set again: replaced, not added to; empty: no field at all.
        s.set_memberships(SessionMemberships::default());
        assert_eq!(s.extra, session().extra);
    }

    #[test]
    fn misshapen_memberships_are_left_out() {
        let mut s = session();
        s.extra.push((
            JOINED_FIELD.into(),
            MsgValue::Map(vec![
                ("ok".into(), "1-0".into()),
                ("number".into(), MsgValue::Int(1)),
            ]),
        ));
        s.extra.push((
            LEFT_FIELD.into(),
            MsgValue::Array(vec![
                MsgValue::Array(vec!["ok".into(), "1-0".into(), "2-0".into()]),
                MsgValue::Array(vec!["short".into(), "1-0".into()]),
                "not an array".into(),
            ]),
        ));
        let m = s.memberships();
        assert_eq!(m.joined, [("ok".to_owned(), "1-0".to_owned())]);
        assert_eq!(
            m.left,
            [("ok".to_owned(), "1-0".to_owned(), "2-0".to_owned())]
        );
    }

    #[test]
    fn extra_fields_by_name() {
        let mut s = session();
        assert_eq!(s.extra("offset"), Some(&MsgValue::from("1-0")));
        assert_eq!(s.extra("sid"), None, "the four Node fields are not extra");
        s.extra.push(("offset".into(), "2-0".into()));
        assert_eq!(
            s.extra("offset"),
            Some(&MsgValue::from("2-0")),
            "the last wins"
        );
        // Node's own sessions have none, and read back with none.
        s.extra.clear();
        let node = PersistedSession::decode(s.encode()).unwrap();
        assert_eq!((node.extra("offset"), node.extra.len()), (None, 0));
    }

    #[test]
    fn garbage() {
        assert_eq!(PersistedSession::decode("%%%"), Err(CodecError::Base64));
        assert_eq!(
            PersistedSession::decode(STANDARD.encode([0x80])),
            Err(CodecError::Field("sid"))
        );
        assert_eq!(
            PersistedSession::decode(STANDARD.encode([0x81])),
            Err(CodecError::Truncated)
        );
    }

    #[test]
    fn include_rules() {
        let rooms = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let opts = |r: &[&str], e: &[&str]| BroadcastOpts {
            rooms: rooms(r),
            except: rooms(e),
            ..Default::default()
        };
        let mine = rooms(&["sid", "a"]);
        assert!(should_include_packet(&mine, &opts(&[], &[])));
        assert!(should_include_packet(&mine, &opts(&["a", "b"], &[])));
        assert!(!should_include_packet(&mine, &opts(&["b"], &[])));
        assert!(!should_include_packet(&mine, &opts(&[], &["sid"])));
        assert!(!should_include_packet(&mine, &opts(&["a"], &["a"])));
        assert!(should_include_packet(&[], &opts(&[], &["x"])));
        assert!(!should_include_packet(&[], &opts(&["x"], &[])));
    }
}
