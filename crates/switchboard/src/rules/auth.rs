//! Authentication: the connect middleware (token → verifier → claims in the socket's
//! data) and refreshing the token of a connected socket by event.
//!
//! The claims live in the socket's data as `{"claims": {...}}`, so the HTTP API and,
//! later, other nodes see them; every reader goes through [`claims_of`].

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use switchboard_auth::jwt::{AuthError, Claims};
use switchboard_engine::sio::Resume;
use switchboard_engine::{ConnectError, Event, Socket};

use super::reply::{self, Refusal};
use super::{Policy, rooms};
use crate::config::{AuthRules, RoomRules};

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

/// Whether a stored session may be resumed by a socket whose token the middleware
/// just verified (`fresh` claims), or that skipped the middleware
/// (`recovery.skip_middlewares`: no fresh claims), now:
///
/// - with fresh claims: only for the same `sub` (a client that keeps its `pid` across
///   a log-out and a log-in as someone else would otherwise resume the first user's
///   rooms, `user:{sub}` among them, under the second user's token), and only if the
///   new claims still grant every room the session holds by a claim (an `auto_join`
///   room, or one `rooms.allow` or `allow_from_claim` let the client join): a user
///   moved to another org, or whose room list shrank, would otherwise come back in
///   the old rooms and be replayed their events. A refresh would take those rooms
///   (`rooms::after_refresh`); a resume starts afresh instead;
/// - without: only if the session holds claims (one stored without, from before the
///   namespace required a token or written by hand in Redis, would resume with none)
///   whose token has not expired (it would get the events sent while it was away,
///   past its `exp`, before its expiry closed it).
///
/// Refused, the client gets a fresh socket, which passes the middleware.
pub(crate) fn may_resume(rules: &RoomRules, resume: &Resume<'_>) -> bool {
    may_resume_at(rules, resume, SystemTime::now())
}

fn may_resume_at(rules: &RoomRules, resume: &Resume<'_>, now: SystemTime) -> bool {
    let claims = |data: &Value| match data.get(CLAIMS_KEY) {
        Some(Value::Object(raw)) => Some(Claims::from(raw.clone())),
        _ => None,
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match (claims(resume.stored), claims(resume.fresh)) {
        (Some(stored), None) => stored.exp.is_none_or(|exp| exp > now),
        (None, None) => false,
        (stored, Some(fresh)) => {
            let same = stored
                .as_ref()
                .is_none_or(|s| s.get("sub") == fresh.get("sub"));
            let rooms: Vec<String> = resume.rooms.iter().map(|r| (*r).to_owned()).collect();
            let (taken, _) = rooms::after_refresh(rules, &rooms, "", stored.as_ref(), &fresh);
            same && taken.is_empty()
        }
    }
}

/// The socket's claims as JSON, for hooks.
pub(crate) fn claims_value(socket: &Socket) -> Option<Value> {
    socket.data().get(CLAIMS_KEY).cloned()
}

fn store_claims(socket: &Socket, claims: &Claims) {
    let claims = claims.to_value();
    // In place: the Admin UI marking the socket at the same moment must not put the
    // old claims back (later room checks would use rights the new token lost).
    socket.update_data(|data| {
        if !data.is_object() {
            *data = Value::Object(serde_json::Map::new());
        }
        if let Some(map) = data.as_object_mut() {
            map.insert(CLAIMS_KEY.to_owned(), claims);
        }
    });
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
    // Gone while its token was verified (a key set may be slow to fetch): nothing to
    // refresh, and a join now would put its id back in rooms nothing empties again.
    if !socket.connected() {
        return Err(Refusal::Disconnected);
    }
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
        // Within `rooms.max_per_socket`, as every other join (the socket may have
        // joined rooms of its own since it connected), and taken out again if it
        // leaves while it joins.
        socket.join_within_while_connected(&join, policy.rules.rooms.max_per_socket);
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
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Value, json};
    use switchboard_engine::sio::Resume;

    use super::may_resume_at;
    use crate::config::RoomRules;

    /// `auto_join = ["org:{org}"]`, `allow = ["chat:*"]`, `allow_from_claim = "rooms"`.
    fn rules() -> RoomRules {
        let config = crate::config::from_text(
            "[[namespaces]]\nname = \"/\"\n[namespaces.auth]\n\
             secret = \"0123456789abcdef0123456789abcdef\"\n\
             [namespaces.rooms]\nauto_join = [\"org:{org}\"]\n\
             allow = [\"chat:*\", \"vip\"]\nallow_from_claim = \"rooms\"\n",
        )
        .expect("valid");
        config.namespaces[0].rooms.clone()
    }

    fn resumes(stored: &Value, fresh: &Value, rooms: &[&str]) -> bool {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let resume = Resume::new(stored, fresh, rooms);
        may_resume_at(&rules(), &resume, now)
    }

    #[test]
    fn with_the_middleware_skipped_a_session_resumes_while_its_own_token_is_valid() {
        let stored = |exp: Value| json!({"claims": {"sub": "alice", "exp": exp}});
        let skipped = Value::Null;
        assert!(resumes(&stored(json!(1_001)), &skipped, &["chat:a"]));
        assert!(!resumes(&stored(json!(1_000)), &skipped, &[]), "expired");
        assert!(
            !resumes(&stored(json!(999.5)), &skipped, &[]),
            "a decimal exp too"
        );
        assert!(
            resumes(&json!({"claims": {"sub": "alice"}}), &skipped, &[]),
            "no exp"
        );
        assert!(!resumes(&json!({}), &skipped, &[]), "stored without claims");
        assert!(
            !resumes(&json!({"cart": 1}), &skipped, &[]),
            "stored without claims"
        );
    }

    #[test]
    fn with_a_token_verified_now_a_session_resumes_for_its_user_in_rooms_still_granted() {
        let claims = |sub: &str, org: &str, rooms: &[&str]| json!({"claims": {"sub": sub, "org": org, "rooms": rooms, "exp": 10}});
        let stored = claims("alice", "acme", &["vip"]);
        let rooms = ["org:acme", "chat:a", "vip", "joined-by-the-backend"];
        // The same rights (an old stored exp does not matter: the new token is valid).
        assert!(resumes(&stored, &claims("alice", "acme", &["vip"]), &rooms));
        assert!(
            !resumes(&stored, &claims("bob", "acme", &["vip"]), &rooms),
            "another user"
        );
        // The org moved: `org:acme` is no longer granted.
        assert!(!resumes(
            &stored,
            &claims("alice", "globex", &["vip"]),
            &rooms
        ));
        // The room list shrank: `vip` and `chat:a` (allowed only with the claim) go.
        assert!(!resumes(&stored, &claims("alice", "acme", &[]), &rooms));
        // Rooms the session was not in do not matter, nor rooms no claim granted.
        assert!(resumes(
            &stored,
            &claims("alice", "acme", &[]),
            &["org:acme", "joined-by-the-backend"]
        ));
        // A session stored without claims, resumed with a token: its rooms are checked.
        assert!(resumes(
            &json!({}),
            &claims("alice", "acme", &[]),
            &["org:acme"]
        ));
    }
}
