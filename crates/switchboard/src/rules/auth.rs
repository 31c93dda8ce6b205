//! Authentication: the connect middleware (token → verifier → claims in the socket's
//! data) and refreshing the token of a connected socket by event.
//!
//! The claims live in the socket's data as `{"claims": {...}}`, so the HTTP API and,
//! later, other nodes see them; every reader goes through [`claims_of`].

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use switchboard_auth::jwt::{AuthError, Claims};
use switchboard_engine::{ConnectError, Event, Socket};

use super::reply::{self, Refusal};
use super::{Policy, rooms};
use crate::config::AuthRules;

/// The key of the claims in the socket's data.
pub(crate) const CLAIMS_KEY: &str = "claims";

/// The connect middleware: refuses the connection with a message safe to show and the
/// error's code in `data` (`{"message":"token expired","data":{"code":"expired"}}`).
pub(crate) async fn authenticate(
    policy: Arc<Policy>,
    socket: Arc<Socket>,
) -> Result<(), ConnectError> {
    let Some(auth) = &policy.rules.auth else {
        return Ok(());
    };
    let verified = auth
        .verifier
        .verify_request(&socket.auth(), &socket.handshake().headers)
        .await;
    match verified {
        Ok(claims) => {
            store_claims(&socket, &claims);
            if !user_has_room(&policy, &claims) {
                policy.metrics.auth_refused_as(TOO_MANY_SOCKETS);
                return Err(too_many_sockets());
            }
            policy.metrics.auth("accepted");
            Ok(())
        }
        Err(err) => {
            tracing::debug!(
                namespace = socket.namespace(),
                code = err.code(),
                "connection refused"
            );
            policy.metrics.auth_refused(err);
            Err(connect_error(err))
        }
    }
}

/// The code of a refusal for a user who has `max_sockets_per_user` sockets.
pub(crate) const TOO_MANY_SOCKETS: &str = "too_many_sockets";

/// Whether the claims' user has room for one more socket (always, when the entry does
/// not bound sockets per user or the token has no `sub`).
fn user_has_room(policy: &Policy, claims: &Claims) -> bool {
    match (&policy.users, claims.sub.as_deref()) {
        (Some(users), Some(sub)) => users.has_room(sub),
        _ => true,
    }
}

/// Counts `socket` for its user (the claims' `sub`) when the entry bounds sockets per
/// user: false when the user has as many as it may. Sockets of tokens without a
/// `sub` are not counted.
pub(crate) fn admit_user(policy: &Policy, socket: &Arc<Socket>, claims: &Claims) -> bool {
    match (&policy.users, claims.sub.as_deref()) {
        (Some(users), Some(sub)) => users.admit(sub, socket),
        _ => true,
    }
}

/// Gives back `socket`'s place among its user's sockets.
pub(crate) fn release_user(policy: &Policy, socket: &Arc<Socket>, claims: Option<&Claims>) {
    if let (Some(users), Some(sub)) = (&policy.users, claims.and_then(|c| c.sub.as_deref())) {
        users.release(sub, socket);
    }
}

/// The CONNECT_ERROR for a user who has `max_sockets_per_user` sockets.
fn too_many_sockets() -> ConnectError {
    ConnectError::new("too many connections for this user")
        .with_data(json!({ "code": TOO_MANY_SOCKETS }))
        .with_category(switchboard_engine::diagnosis::Category::Policy)
}

/// The CONNECT_ERROR for a refused token.
pub(crate) fn connect_error(err: AuthError) -> ConnectError {
    ConnectError::new(err.client_message())
        .with_data(json!({ "code": err.code() }))
        .with_category(switchboard_engine::diagnosis::Category::Auth)
}

/// The socket's verified claims, if it authenticated.
pub(crate) fn claims_of(socket: &Socket) -> Option<Claims> {
    match socket.data() {
        Value::Object(mut data) => match data.remove(CLAIMS_KEY) {
            Some(Value::Object(raw)) => Some(Claims::from(raw)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether a stored session (its data `stored`) may be resumed by a socket whose
/// token the middleware just verified (`fresh`; `null` when the middleware was
/// skipped, `recovery.skip_middlewares`), now:
///
/// - not when both carry claims whose `sub` differs (or one has a `sub` and the other
///   none): a client that keeps its `pid` across a log-out and a log-in as someone
///   else would otherwise resume the first user's rooms (`user:{sub}` among them)
///   under the second user's token;
/// - not when the middleware was skipped and the session's own token has expired: it
///   would get the events sent while it was away, past its token's `exp`, before its
///   expiry closed it. It starts afresh instead, and a fresh socket passes the
///   middleware (a current token).
pub(crate) fn may_resume(stored: &Value, fresh: &Value) -> bool {
    may_resume_at(stored, fresh, SystemTime::now())
}

fn may_resume_at(stored: &Value, fresh: &Value, now: SystemTime) -> bool {
    let claims = |data: &Value| data.get(CLAIMS_KEY).cloned();
    let sub = |data: &Value| claims(data).map(|c| c.get("sub").cloned());
    let same = match (sub(stored), sub(fresh)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let verified_now = claims(fresh).is_some();
    let exp = claims(stored).and_then(|c| c.get("exp").and_then(Value::as_u64));
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    same && (verified_now || exp.is_none_or(|exp| exp > now))
}

/// The socket's claims as JSON, for hooks.
pub(crate) fn claims_value(socket: &Socket) -> Option<Value> {
    socket.data().get(CLAIMS_KEY).cloned()
}

fn store_claims(socket: &Socket, claims: &Claims) {
    let mut data = match socket.data() {
        Value::Object(data) => data,
        _ => serde_json::Map::new(),
    };
    data.insert(CLAIMS_KEY.to_owned(), claims.to_value());
    socket.set_data(Value::Object(data));
}

/// The refresh event: `refresh(token, ack)`. Verifying may wait for a key set, so it
/// runs in its own task; the socket keeps its old deadline until the new token is
/// accepted, and a refused refresh leaves it as it was. One at a time per socket: a
/// refresh while the last is still being verified is refused at once (`refresh in
/// progress`), so a client cannot pile up tasks, each holding a token of up to
/// `engine.max_payload`, while a key set is slow to fetch.
pub(crate) fn refresh(policy: &Arc<Policy>, mut event: Event) {
    let ack = event.take_ack();
    let (Some(auth), Some(Value::String(token))) = (&policy.rules.auth, event.payload.args.first())
    else {
        reply::answer(ack, Err(Refusal::TokenRequired));
        return;
    };
    let Some(turn) = policy.refreshing.take(event.socket.id(), 1, 1) else {
        reply::answer(ack, Err(Refusal::RefreshInProgress));
        return;
    };
    let token = token.clone();
    let (auth, policy, socket) = (auth.clone(), policy.clone(), event.socket);
    tokio::spawn(async move {
        let outcome = refreshed(&policy, &auth, &socket, &token).await;
        // Over before the client hears of it, so its next refresh is never refused.
        drop(turn);
        policy.metrics.auth(match outcome {
            Ok(()) => "refreshed",
            Err(_) => "refresh_refused",
        });
        reply::answer(ack, outcome);
    });
}

async fn refreshed(
    policy: &Policy,
    auth: &AuthRules,
    socket: &Arc<Socket>,
    token: &str,
) -> Result<(), Refusal> {
    let claims = auth.verifier.verify(token).await.map_err(Refusal::Auth)?;
    let old = claims_of(socket);
    if old.as_ref().and_then(|c| c.sub.as_ref()) != claims.sub.as_ref() {
        return Err(Refusal::SubjectMismatch);
    }
    store_claims(socket, &claims);
    policy.arm_expiry(socket, &claims);
    // The rooms follow the claims: a right the new token no longer gives is taken.
    let own = socket.id().to_string();
    let (leave, join) = rooms::after_refresh(
        &policy.rules.rooms,
        &socket.rooms(),
        &own,
        old.as_ref(),
        &claims,
    );
    for room in &leave {
        socket.leave(room);
    }
    if !join.is_empty() {
        let join: Vec<&str> = join.iter().map(String::as_str).collect();
        socket.join(&join);
    }
    socket.mark(&match claims.exp {
        Some(exp) => format!(
            "token refreshed, expires at {}",
            switchboard_engine::diagnosis::http_date(exp)
        ),
        None => "token refreshed, no expiry".to_owned(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde_json::json;

    use super::may_resume_at;

    #[test]
    fn a_session_resumes_under_its_own_identity_and_only_while_its_token_is_valid() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let stored = |exp: u64| json!({"claims": {"sub": "alice", "exp": exp}});
        let skipped = serde_json::Value::Null;
        assert!(may_resume_at(&stored(1_001), &skipped, now));
        assert!(!may_resume_at(&stored(1_000), &skipped, now), "expired");
        assert!(!may_resume_at(&stored(10), &skipped, now), "expired");
        // A token verified now (the middleware ran) stands for itself.
        let alice_now = json!({"claims": {"sub": "alice", "exp": 2_000}});
        assert!(may_resume_at(&stored(10), &alice_now, now));
        let bob_now = json!({"claims": {"sub": "bob", "exp": 2_000}});
        assert!(
            !may_resume_at(&stored(1_001), &bob_now, now),
            "another user"
        );
        // No claims stored (no auth), or no exp: nothing expires.
        assert!(may_resume_at(&json!({}), &skipped, now));
        assert!(may_resume_at(
            &json!({"claims": {"sub": "alice"}}),
            &skipped,
            now
        ));
        assert!(may_resume_at(&json!({}), &skipped, SystemTime::now()));
    }
}
