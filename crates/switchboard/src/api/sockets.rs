//! `POST /api/v1/sockets/{join,leave,disconnect}`: act on a selection of sockets.
//!
//! Unlike an emit, an empty selection is refused: making every socket leave a room or
//! disconnect must be asked for with `"all": true`, never by omission.

use std::sync::Arc;

use serde::Serialize;
use switchboard_engine::Namespace;
use switchboard_engine::sio::BroadcastOperator;

use super::ApiState;
use super::inspect::cluster_sockets_brief;
use super::select::{self, Target};
use super::view::SocketView;
use crate::http::ApiError;

/// The request body of all three operations; each takes its own action field.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SocketsRequest {
    /// Namespace name; `/` when omitted.
    #[serde(default = "select::main_namespace")]
    namespace: String,
    /// Sockets in any of these rooms.
    #[serde(default)]
    rooms: Vec<String>,
    /// These sockets.
    #[serde(default)]
    socket_ids: Vec<String>,
    /// Not these rooms or sockets.
    #[serde(default)]
    except: Vec<String>,
    /// Every socket of the namespace (minus `except`).
    #[serde(default)]
    all: bool,
    /// Rooms to join (`/sockets/join` only).
    #[serde(default, deserialize_with = "select::not_null")]
    join: Option<Vec<String>>,
    /// Rooms to leave (`/sockets/leave` only).
    #[serde(default, deserialize_with = "select::not_null")]
    leave: Option<Vec<String>>,
    /// Close the whole connection, not only the namespace (`/sockets/disconnect` only).
    #[serde(default, deserialize_with = "select::not_null")]
    close: Option<bool>,
}

/// The answer of all three operations.
#[derive(Debug, Serialize)]
pub(crate) struct Affected {
    /// Sockets selected and acted on.
    affected: usize,
}

/// Which operation, for messages about fields that belong to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Join rooms.
    Join,
    /// Leave rooms.
    Leave,
    /// Disconnect.
    Disconnect,
}

/// Makes the selected sockets, on every node, join rooms.
pub(crate) async fn join(state: &ApiState, body: &[u8]) -> Result<Affected, ApiError> {
    let mut req: SocketsRequest = super::body::json(body)?;
    let rooms = rooms(req.join.take(), "join")?;
    let (ns, target) = req.target(state, Operation::Join)?;
    let op = target.operator(&ns);
    let affected = cluster_sockets_brief(&ns, &op).await?.len();
    let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
    op.sockets_join(&names);
    Ok(Affected { affected })
}

/// Makes the selected sockets, on every node, leave rooms. The selection is made
/// first, so sockets chosen by a room they are leaving are all affected.
pub(crate) async fn leave(state: &ApiState, body: &[u8]) -> Result<Affected, ApiError> {
    let mut req: SocketsRequest = super::body::json(body)?;
    let rooms = rooms(req.leave.take(), "leave")?;
    let (ns, target) = req.target(state, Operation::Leave)?;
    let op = target.operator(&ns);
    let selected = cluster_sockets_brief(&ns, &op).await?;
    let selection_moves = rooms
        .iter()
        .any(|r| target.rooms.contains(r) || target.except.contains(r));
    if selection_moves {
        // Leaving a room that makes the selection would change it half-way: act on
        // the selected sockets by id instead, one cluster request per room as below.
        // An empty selection must stay empty, not become every socket.
        if let Some(by_id) = by_ids(&ns, &selected) {
            for room in &rooms {
                by_id.sockets_leave(room);
            }
        }
    } else {
        for room in &rooms {
            op.sockets_leave(room);
        }
    }
    Ok(Affected {
        affected: selected.len(),
    })
}

/// The sockets of `selected` by their ids (each socket is in the room named by its
/// id), or `None` when there are none: an operator without rooms means everyone.
fn by_ids(ns: &Arc<Namespace>, selected: &[SocketView]) -> Option<BroadcastOperator> {
    let (first, rest) = selected.split_first()?;
    let op = rest
        .iter()
        .fold(ns.to(first.id()), |op, socket| op.to(socket.id()));
    Some(op)
}

/// Disconnects the selected sockets, on every node, from the namespace, or with
/// `close` closes their connections.
pub(crate) async fn disconnect(state: &ApiState, body: &[u8]) -> Result<Affected, ApiError> {
    let mut req: SocketsRequest = super::body::json(body)?;
    let close = req.close.take().unwrap_or(false);
    let (ns, target) = req.target(state, Operation::Disconnect)?;
    let op = target.operator(&ns);
    let affected = cluster_sockets_brief(&ns, &op).await?.len();
    op.disconnect_sockets(close);
    Ok(Affected { affected })
}

/// The rooms of a `join` or `leave` field: present, not empty, no empty names.
fn rooms(rooms: Option<Vec<String>>, field: &str) -> Result<Vec<String>, ApiError> {
    let rooms = rooms.ok_or_else(|| {
        ApiError::InvalidRequest(format!("`{field}` (the rooms to {field}) is required"))
    })?;
    if rooms.is_empty() || rooms.iter().any(String::is_empty) {
        return Err(ApiError::InvalidRequest(format!(
            "`{field}` needs at least one room, and room names must not be empty"
        )));
    }
    Ok(rooms)
}

impl SocketsRequest {
    /// The namespace and the selection, checked.
    fn target(self, state: &ApiState, op: Operation) -> Result<(Arc<Namespace>, Target), ApiError> {
        self.refuse_other_actions(op)?;
        let target = Target {
            rooms: self.rooms,
            socket_ids: self.socket_ids,
            except: self.except,
        };
        target.validate()?;
        match (self.all, target.is_everyone()) {
            (false, true) => return Err(ApiError::EmptySelection),
            (true, false) => {
                return Err(ApiError::InvalidRequest(
                    "`all` selects every socket; do not combine it with `rooms` or \
                     `socket_ids`"
                        .into(),
                ));
            }
            _ => {}
        }
        let ns = select::namespace(&state.io, &self.namespace)?;
        Ok((ns, target))
    }

    /// 422 for the action field of another operation (`close` sent to `/join`...).
    fn refuse_other_actions(&self, op: Operation) -> Result<(), ApiError> {
        let present = [
            (Operation::Join, "join", self.join.is_some()),
            (Operation::Leave, "leave", self.leave.is_some()),
            (Operation::Disconnect, "close", self.close.is_some()),
        ];
        match present.iter().find(|(owner, _, set)| *set && *owner != op) {
            Some((owner, field, _)) => Err(ApiError::InvalidRequest(format!(
                "`{field}` belongs to /sockets/{}",
                match owner {
                    Operation::Join => "join",
                    Operation::Leave => "leave",
                    Operation::Disconnect => "disconnect",
                }
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_rooms_are_required_and_named() {
        assert_eq!(rooms(Some(vec!["a".into()]), "join"), Ok(vec!["a".into()]));
        assert!(rooms(None, "join").is_err());
        assert!(rooms(Some(vec![]), "leave").is_err());
        assert!(rooms(Some(vec![String::new()]), "leave").is_err());
    }

    #[test]
    fn action_fields_belong_to_their_operation() {
        let req = SocketsRequest {
            close: Some(true),
            ..SocketsRequest::default()
        };
        assert!(req.refuse_other_actions(Operation::Disconnect).is_ok());
        let Err(ApiError::InvalidRequest(message)) = req.refuse_other_actions(Operation::Join)
        else {
            panic!("`close` must be refused by join");
        };
        assert!(message.contains("/sockets/disconnect"), "{message}");
    }
}
