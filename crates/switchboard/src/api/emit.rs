//! `POST /api/v1/emit`: an event to every socket of a namespace, or to rooms and
//! sockets, with JSON and binary (base64) arguments.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use switchboard_engine::Payload;
use switchboard_engine::protocol::socketio::is_reserved_event;

use super::ApiState;
use super::select::{self, Target};
use crate::http::ApiError;
use switchboard_engine::sio::DurableEmitError;

/// The request body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmitRequest {
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
    /// Drop the event for clients that cannot take it right now.
    #[serde(default)]
    volatile: bool,
    /// The event name.
    event: String,
    /// JSON arguments.
    #[serde(default)]
    args: Vec<Value>,
    /// Binary arguments, inserted among `args`.
    #[serde(default)]
    binary_args: Vec<BinaryArg>,
}

/// A binary argument: its position in the final argument list and its bytes.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryArg {
    /// Position among all arguments (JSON and binary), from 0.
    index: usize,
    /// The bytes, standard base64 with padding.
    base64: String,
}

/// The answer.
#[derive(Debug, Serialize)]
pub(crate) struct EmitResponse {
    /// Sockets the event was queued for.
    recipients: usize,
}

/// Emits the event to every node; `recipients` counts the sockets it was queued for on
/// this node. With a durable cluster log (`redis-streams`) the answer waits until the
/// log holds the event, so a 200 means it reaches every node even if this one dies.
pub(crate) async fn emit(state: &ApiState, body: &[u8]) -> Result<EmitResponse, ApiError> {
    let req: EmitRequest = super::body::json(body)?;
    check_event(&req.event)?;
    let target = Target {
        rooms: req.rooms,
        socket_ids: req.socket_ids,
        except: req.except,
    };
    target.validate()?;
    let payload = payload(req.args, req.binary_args, state.max_binary_args)?;
    let ns = select::namespace(&state.io, &req.namespace)?;
    let mut op = target.operator(&ns);
    if req.volatile {
        op = op.volatile();
    }
    let recipients = op
        .emit_durable(&req.event, payload)
        .await
        .map_err(|err| match err {
            DurableEmitError::ReservedEvent => ApiError::ReservedEvent(req.event.clone()),
            DurableEmitError::Adapter(err) => super::inspect::cluster_error(err),
        })?;
    Ok(EmitResponse { recipients })
}

/// A name a client can receive: not empty, not reserved.
fn check_event(event: &str) -> Result<(), ApiError> {
    if event.is_empty() {
        return Err(ApiError::InvalidRequest("`event` must not be empty".into()));
    }
    if is_reserved_event(event) {
        return Err(ApiError::ReservedEvent(event.to_owned()));
    }
    Ok(())
}

/// The arguments in order, binary ones decoded and placed at their indexes (and
/// numbered in argument order, as Socket.IO's own encoder numbers attachments).
fn payload(args: Vec<Value>, binary: Vec<BinaryArg>, max: usize) -> Result<Payload, ApiError> {
    if args.iter().any(has_placeholder) {
        return Err(ApiError::InvalidRequest(
            "`args` must not contain {\"_placeholder\": true} objects; send bytes in \
             `binary_args`"
                .into(),
        ));
    }
    if binary.len() > max {
        return Err(ApiError::InvalidRequest(format!(
            "at most {max} binary arguments (socketio.max_attachments)"
        )));
    }
    let total = args.len() + binary.len();
    let mut slots: Vec<Option<Value>> = vec![None; total];
    let mut payload = Payload::default();
    let mut binary: Vec<(usize, BinaryArg)> = binary.into_iter().enumerate().collect();
    binary.sort_by_key(|(_, arg)| arg.index);
    for (i, arg) in binary {
        let slot = slots.get_mut(arg.index).filter(|s| s.is_none());
        let Some(slot) = slot else {
            return Err(ApiError::InvalidRequest(format!(
                "binary_args[{i}].index {} is taken or past the last argument ({})",
                arg.index,
                total.saturating_sub(1)
            )));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(arg.base64.as_bytes())
            .map_err(|_| ApiError::InvalidBase64(i))?;
        *slot = Some(payload.binary_arg(bytes));
    }
    let mut json = args.into_iter();
    payload.args = slots
        .into_iter()
        .filter_map(|slot| slot.or_else(|| json.next()))
        .collect();
    Ok(payload)
}

/// Whether `value` holds a binary placeholder object anywhere: clients would replace
/// it with an attachment, so only `binary_args` may create one.
fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.get("_placeholder") == Some(&Value::Bool(true)) || map.values().any(has_placeholder)
        }
        Value::Array(items) => items.iter().any(has_placeholder),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bin(index: usize, base64: &str) -> BinaryArg {
        BinaryArg {
            index,
            base64: base64.into(),
        }
    }

    #[test]
    fn binary_arguments_take_their_places_among_json_ones() -> Result<(), ApiError> {
        let p = payload(
            vec![json!("a"), json!("c")],
            vec![bin(3, "AQI="), bin(1, "/w==")],
            64,
        )?;
        assert_eq!(
            p.args,
            [
                json!("a"),
                json!({"_placeholder": true, "num": 0}),
                json!("c"),
                json!({"_placeholder": true, "num": 1}),
            ]
        );
        assert_eq!(p.binary, [vec![0xff_u8], vec![1, 2]]);
        Ok(())
    }

    #[test]
    fn bad_binary_arguments_are_refused() {
        let two = || vec![json!(1), json!(2)];
        assert_eq!(
            payload(two(), vec![bin(0, "not base64!")], 64).err(),
            Some(ApiError::InvalidBase64(0))
        );
        for binary in [vec![bin(3, "AA==")], vec![bin(0, "AA=="), bin(0, "AA==")]] {
            assert!(matches!(
                payload(two(), binary, 64),
                Err(ApiError::InvalidRequest(_))
            ));
        }
        assert!(payload(two(), vec![bin(0, "AA=="), bin(1, "AA==")], 1).is_err());
        let sneaky = vec![json!({"x": [{"_placeholder": true, "num": 0}]})];
        assert!(payload(sneaky, vec![], 64).is_err());
    }

    #[test]
    fn events_must_be_named_and_not_reserved() {
        assert!(check_event("chat message").is_ok());
        assert!(matches!(check_event(""), Err(ApiError::InvalidRequest(_))));
        assert_eq!(
            check_event("disconnect"),
            Err(ApiError::ReservedEvent("disconnect".into()))
        );
    }
}
