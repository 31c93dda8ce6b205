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
