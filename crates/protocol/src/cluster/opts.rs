//! The broadcast target (`BroadcastOptions` in `socket.io-adapter`) as both adapters put
//! it on the wire.

use super::CodecError;
use super::msgpack::MsgValue;
use super::read::{Obj, ObjBuilder, strings};

/// Which sockets a broadcast or a cluster-wide operation reaches: members of any of
/// `rooms` (everyone when empty) that are in none of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastOpts {
    /// Target rooms; empty means every socket of the namespace. Node allows numeric
    /// rooms; they arrive here as their decimal strings.
    pub rooms: Vec<String>,
    /// Rooms (often a socket's own id) whose members are skipped.
    pub except: Vec<String>,
    /// Modifiers.
    pub flags: BroadcastFlags,
}

/// Broadcast modifiers (`BroadcastFlags` in `socket.io-adapter`). Each is `None` when
/// Node would leave it `undefined`: `socket-io-adapter` tests `volatile === undefined`,
/// so `Some(false)` is not the same as `None`. Flags this codec does not know (such as
/// `expectSingleResponse`, only meaningful on the emitting node) are dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// Drop the packet for clients that are not ready to receive it.
    pub volatile: Option<bool>,
    /// Compress the packet (WebSocket permessage-deflate).
    pub compress: Option<bool>,
    /// Only this node; never published, so normally absent on the wire.
    pub local: Option<bool>,
    /// Set by old emitters.
    pub broadcast: Option<bool>,
    /// Set by old emitters.
    pub binary: Option<bool>,
    /// Acknowledgement timeout in milliseconds, for broadcasts with acknowledgements.
    pub timeout: Option<u64>,
}

impl BroadcastOpts {
    /// `{rooms, except, flags}`, the order both adapters write.
    pub(crate) fn to_value(&self) -> MsgValue {
        ObjBuilder::new()
            .field("rooms", strings(&self.rooms))
            .field("except", strings(&self.except))
            .field("flags", self.flags.to_value())
            .build()
    }

    /// `{rooms, except}`: the Redis adapter's requests leave the flags out.
    pub(crate) fn to_value_without_flags(&self) -> MsgValue {
        ObjBuilder::new()
            .field("rooms", strings(&self.rooms))
            .field("except", strings(&self.except))
            .build()
    }

    /// Reads `{rooms, except, flags}` in any order; missing lists are empty, missing or
    /// malformed flags are ignored.
    pub(crate) fn from_value(value: &MsgValue) -> Result<Self, CodecError> {
        let obj = Obj::new(value, "opts")?;
        Ok(BroadcastOpts {
            rooms: obj.rooms("rooms")?,
            except: obj.rooms("except")?,
            flags: obj
                .get("flags")
                .map(BroadcastFlags::from_value)
                .unwrap_or_default(),
        })
    }

    /// The room named by the channel a broadcast is published on: the single target
    /// room, if there is exactly one (duplicates aside).
    pub fn single_room(&self) -> Option<&str> {
        let first = self.rooms.first()?;
        self.rooms
            .iter()
            .all(|r| r == first)
            .then_some(first.as_str())
    }
}

impl BroadcastFlags {
    /// The set flags, in the order `BroadcastFlags` declares them. Node writes them in
    /// the order the application chained the modifiers, which receivers ignore.
    fn to_value(self) -> MsgValue {
        ObjBuilder::new()
            .opt_field("volatile", self.volatile)
            .opt_field("compress", self.compress)
            .opt_field("local", self.local)
            .opt_field("broadcast", self.broadcast)
            .opt_field("binary", self.binary)
            .opt_field("timeout", self.timeout)
            .build()
    }

    fn from_value(value: &MsgValue) -> Self {
        let Ok(obj) = Obj::new(value, "flags") else {
            return BroadcastFlags::default();
        };
        let flag = |key| match obj.get(key) {
            Some(MsgValue::Bool(b)) => Some(*b),
            _ => None,
        };
        BroadcastFlags {
            volatile: flag("volatile"),
            compress: flag("compress"),
            local: flag("local"),
            broadcast: flag("broadcast"),
            binary: flag("binary"),
            timeout: obj.get("timeout").and_then(MsgValue::as_u64),
        }
    }
}

/// A page of a `fetchSockets` listing, a field Switchboard adds to its requests
/// (`"page": {"after": id, "limit": n, "brief": true}`): the node answers with its
/// sockets whose id sorts after `after`, the first `limit` of them by id, with `brief`
/// each by its id and rooms only. Node's adapters ignore the
/// field and answer with every socket, which the asking node cuts to the page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketsPage {
    /// Only sockets whose id sorts after this one.
    pub after: Option<String>,
    /// At most this many.
    pub limit: Option<u64>,
    /// Each socket by its id and rooms only (`"brief": true`).
    pub brief: bool,
}

impl SocketsPage {
    /// The `page` field of a request object: absent (or `null`) is `None`.
    pub(crate) fn read(request: &Obj<'_>) -> Result<Option<Self>, CodecError> {
        let Some(value) = request.get("page") else {
            return Ok(None);
        };
        let page = Obj::new(value, "page")?;
        let limit = match page.get("limit") {
            None => None,
            Some(_) => Some(page.u64("limit")?),
        };
        Ok(Some(SocketsPage {
            after: page.opt_str("after")?,
            limit,
            brief: page.truthy("brief"),
        }))
    }

    /// The `page` field's value.
    pub(crate) fn to_value(&self) -> MsgValue {
        ObjBuilder::new()
            .opt_field("after", self.after.as_deref())
            .opt_field("limit", self.limit)
            .opt_field("brief", self.brief.then_some(true))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::js::stringify;

    #[test]
    fn round_trip_and_key_order() {
        let opts = BroadcastOpts {
            rooms: vec!["r1".into()],
            except: vec!["sid".into()],
            flags: BroadcastFlags {
                volatile: Some(true),
                timeout: Some(5000),
                ..Default::default()
            },
        };
        let value = opts.to_value();
        assert_eq!(
            stringify(&value),
            r#"{"rooms":["r1"],"except":["sid"],"flags":{"volatile":true,"timeout":5000}}"#
        );
        assert_eq!(BroadcastOpts::from_value(&value), Ok(opts));
    }

    #[test]
    fn lenient_on_missing_parts_and_unknown_flags() {
        let value = ObjBuilder::new()
            .field(
                "flags",
                ObjBuilder::new()
                    .field("expectSingleResponse", true)
                    .field("compress", "yes")
                    .build(),
            )
            .build();
        assert_eq!(
            BroadcastOpts::from_value(&value),
            Ok(BroadcastOpts::default())
        );
        assert_eq!(
            BroadcastOpts::from_value(&MsgValue::Nil),
            Err(CodecError::Field("opts"))
        );
    }

    #[test]
    fn single_room() {
        let mut opts = BroadcastOpts::default();
        assert_eq!(opts.single_room(), None);
        opts.rooms = vec!["a".into(), "a".into()];
        assert_eq!(opts.single_room(), Some("a"));
        opts.rooms.push("b".into());
        assert_eq!(opts.single_room(), None);
    }
}
