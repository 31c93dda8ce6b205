//! Which namespace and which sockets a request is about: namespace lookup, and the
//! rooms / socket ids / exclusions that become a [`BroadcastOperator`].

use std::sync::Arc;

use switchboard_engine::protocol::Sid;
use switchboard_engine::sio::BroadcastOperator;
use switchboard_engine::{Io, Namespace};

use crate::http::ApiError;

/// The namespace a request omits: the main one.
pub(crate) fn main_namespace() -> String {
    "/".to_owned()
}

/// The namespace named `name` (`chat` means `/chat`), if it exists on this node now.
///
/// Looks among existing namespaces rather than through [`Io::namespace`], which would
/// create a namespace matching a pattern: a backend must not be able to create
/// namespaces without bound by naming them.
pub(crate) fn namespace(io: &Io, name: &str) -> Result<Arc<Namespace>, ApiError> {
    let name = if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    };
    io.namespaces()
        .into_iter()
        .find(|ns| ns.name() == name)
        .ok_or(ApiError::UnknownNamespace(name))
}

/// A socket id as written in a request: 422 when it cannot be one.
pub(crate) fn socket_id(text: &str) -> Result<Sid, ApiError> {
    text.parse()
        .map_err(|_| ApiError::InvalidRequest(format!("{text:?} is not a socket id")))
}

/// Sockets chosen by rooms and socket ids (the union), minus those in `except` rooms
/// or with `except` ids. Nothing chosen means every socket of the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Target {
    /// Sockets in any of these rooms.
    pub(crate) rooms: Vec<String>,
    /// These sockets.
    pub(crate) socket_ids: Vec<String>,
    /// Not the sockets in these rooms, nor the sockets with these ids.
    pub(crate) except: Vec<String>,
}

impl Target {
    /// Checks names and ids: 422 for an empty room name or a malformed socket id.
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let named = self.rooms.iter().chain(&self.except);
        if named.clone().any(String::is_empty) {
            return Err(ApiError::InvalidRequest(
                "room names must not be empty".into(),
            ));
        }
        for id in &self.socket_ids {
            socket_id(id)?;
        }
        Ok(())
    }

    /// Whether it names no rooms and no sockets (so it means every socket).
    pub(crate) fn is_everyone(&self) -> bool {
        self.rooms.is_empty() && self.socket_ids.is_empty()
    }

    /// The engine's selection. Each socket is in the room named by its id, so ids
    /// and rooms are both targets of `to` and `except`.
    pub(crate) fn operator(&self, ns: &Arc<Namespace>) -> BroadcastOperator {
        let mut op = ns.all();
        for room in self.rooms.iter().chain(&self.socket_ids) {
            op = op.to(room.as_str());
        }
        for room in &self.except {
            op = op.except(room.as_str());
        }
        op
    }
}

/// Reads an optional field that, when present, must hold a value: `"close": null` is
/// refused like any other wrong type (the OpenAPI document does not allow `null`),
/// rather than read as if the field were absent.
pub(crate) fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use switchboard_engine::{Shutdown, SocketIoConfig};

    use super::*;

    #[tokio::test]
    async fn namespaces_are_found_with_or_without_the_slash_and_never_created() {
        let io = Io::new(SocketIoConfig::default(), Shutdown::never());
        io.of("/chat");
        io.of_matching(|name| name.starts_with("/dyn-"));
        assert_eq!(
            namespace(&io, "/chat").map(|n| n.name().to_owned()),
            Ok("/chat".into())
        );
        assert_eq!(
            namespace(&io, "chat").map(|n| n.name().to_owned()),
            Ok("/chat".into())
        );
        assert_eq!(
            namespace(&io, "/").map(|n| n.name().to_owned()),
            Ok("/".into())
        );
        assert_eq!(
            namespace(&io, "/dyn-1").err(),
            Some(ApiError::UnknownNamespace("/dyn-1".into()))
        );
        assert_eq!(io.namespaces().len(), 2);
    }

    #[test]
    fn targets_check_their_names() {
        let ok = Target {
            rooms: vec!["a".into()],
            socket_ids: vec!["AAAAAAAAAAAAAAAAAAAA".into()],
            except: vec!["b".into()],
        };
        assert_eq!(ok.validate(), Ok(()));
        assert!(!ok.is_everyone());
        let bad_id = Target {
            socket_ids: vec!["short".into()],
            ..Target::default()
        };
        assert!(matches!(
            bad_id.validate(),
            Err(ApiError::InvalidRequest(_))
        ));
        let empty_room = Target {
            except: vec![String::new()],
            ..Target::default()
        };
        assert!(empty_room.validate().is_err());
        assert!(Target::default().is_everyone());
    }
}
