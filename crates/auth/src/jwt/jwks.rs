//! The JWKS cache: keys fetched from the identity provider, used until their TTL runs
//! out, refreshed early when no cached key fits a token (an unknown `kid`) — at most
//! once per refresh interval, with concurrent misses sharing one fetch — and kept when a
//! refresh fails. Which one key verifies a token is decided by [`choose`].
//!
//! Stale keys are used for as long as the endpoint cannot be read: refusing every
//! connection because the identity provider is briefly down would be worse than
//! accepting tokens signed by keys that were valid minutes ago. A key the provider
//! withdraws stops working at the first successful refresh.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::{Instant, timeout};

use super::fetch::{FetchError, FetchKeys};
use super::keys::{VerifyKey, parse_jwks};
use super::settings::JwksSettings;
use super::{Algorithm, AuthError};

/// A cached key set with its refresh rules. Cheap to share: all state is behind an `Arc`.
#[derive(Debug)]
pub(crate) struct JwksCache {
    /// State shared with the fetch tasks this cache spawns.
    shared: Arc<Shared>,
}

/// What the cache and its fetch tasks share.
#[derive(Debug)]
struct Shared {
    /// URL, TTL, refresh interval and timeout.
    settings: JwksSettings,
    /// Gets the document (HTTP in production, scripted in tests).
    fetcher: Box<dyn FetchKeys>,
    /// The keys and the fetch bookkeeping. A `std` mutex: it is held only to copy or
    /// swap a few fields, never across an `.await`.
    state: Mutex<State>,
    /// Held for the whole of a fetch, by the spawned fetch task itself: whoever misses
    /// while it is held waits for that fetch instead of starting another (single flight).
    /// A tokio mutex because it is held across the fetch's `.await`s.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

/// The cached keys and when they were fetched.
#[derive(Debug)]
struct State {
    /// The last key set fetched successfully (empty before the first).
    keys: Arc<[VerifyKey]>,
    /// When `keys` was fetched; `None` until a fetch succeeds.
    fetched_at: Option<Instant>,
    /// When the last fetch started: the next may not start before `refresh_interval`.
    attempted_at: Option<Instant>,
    /// How many fetches have finished: a caller that waited for the refresh lock checks
    /// it to learn that someone else fetched meanwhile.
    attempts: u64,
    /// Whether the last finished fetch failed.
    last_failed: bool,
}

/// How the cached keys fit a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// [`choose`] picks a key for it.
    Found,
    /// The key it names exists but may not verify its `alg`.
    WrongAlg,
    /// No key fits it: an unknown `kid`, or no single key for its `alg`.
    Missing,
}

impl JwksCache {
    /// An empty cache; the first lookup fetches.
    pub(crate) fn new(settings: JwksSettings, fetcher: Box<dyn FetchKeys>) -> Self {
        JwksCache {
            shared: Arc::new(Shared {
                settings,
                fetcher,
                state: Mutex::new(State {
                    keys: Arc::from(Vec::new()),
                    fetched_at: None,
                    attempted_at: None,
                    attempts: 0,
                    last_failed: false,
                }),
                refresh: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
    }

    /// The key set to verify a token declaring `kid` and `alg` with: fresh cached keys
    /// when they fit, else after a refresh (if one may run now), else stale keys that fit.
    ///
    /// Errors: `UnknownKey` when nothing fits a set that is up to date with the
    /// endpoint; `KeysUnavailable` when nothing fits and the endpoint could not be read;
    /// `AlgorithmNotAllowed` when the named key may not verify `alg`.
    pub(crate) async fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<[VerifyKey]>, AuthError> {
        let (keys, fresh, seen) = {
            let state = self.shared.state();
            let fresh = state.is_fresh(self.shared.settings.cache_ttl);
            (state.keys.clone(), fresh, state.attempts)
        };
        match fit(&keys, kid, alg) {
            Fit::Found if fresh => return Ok(keys),
            Fit::WrongAlg if fresh => return Err(AuthError::AlgorithmNotAllowed),
            _ => {}
        }
        self.refresh(seen).await;
        let state = self.shared.state();
        match fit(&state.keys, kid, alg) {
            Fit::Found => Ok(state.keys.clone()),
            Fit::WrongAlg => Err(AuthError::AlgorithmNotAllowed),
            Fit::Missing if state.last_failed || state.fetched_at.is_none() => {
                Err(AuthError::KeysUnavailable)
            }
            Fit::Missing => Err(AuthError::UnknownKey),
        }
    }

    /// Fetches the set if it has never been fetched (subject to the refresh interval);
    /// `KeysUnavailable` if there is still no set after that.
    pub(crate) async fn warm_up(&self) -> Result<(), AuthError> {
        let (fetched, seen) = {
            let state = self.shared.state();
            (state.fetched_at.is_some(), state.attempts)
        };
        if !fetched {
            self.refresh(seen).await;
        }
        match self.shared.state().fetched_at {
            Some(_) => Ok(()),
            None => Err(AuthError::KeysUnavailable),
        }
    }

    /// Runs one fetch unless another finished since the caller looked (`seen`) or the
    /// last one started less than a refresh interval ago. Returns when the fetch this
    /// caller started or waited for is over.
    async fn refresh(&self, seen: u64) {
        let guard = self.shared.refresh.clone().lock_owned().await;
        {
            let mut state = self.shared.state();
            if state.attempts != seen {
                return;
            }
            let now = Instant::now();
            let interval = self.shared.settings.refresh_interval;
            if state
                .attempted_at
                .is_some_and(|at| now.duration_since(at) < interval)
            {
                return;
            }
            state.attempted_at = Some(now);
        }
        // The fetch runs in its own task holding the lock, so a caller that gives up
        // (its connection closed) neither aborts it nor lets a second one start.
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            shared.fetch_and_store().await;
            drop(guard);
        });
        // A fetch task that panicked leaves the cached keys as they were.
        let _ = task.await;
    }
}

impl Shared {
    /// The state, even if a panic elsewhere poisoned the lock (every update leaves it
    /// consistent: fields are assigned, never half-built).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One bounded fetch; success replaces the keys, failure keeps them.
    async fn fetch_and_store(&self) {
        let url = &self.settings.url;
        let result = match timeout(self.settings.fetch_timeout, self.fetcher.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
        .and_then(|body| parse_jwks(&body).map_err(FetchError::Invalid));
        let mut state = self.state();
        state.attempts += 1;
        match result {
            Ok(keys) => {
                if keys.is_empty() {
                    tracing::warn!(%url, "JWKS holds no usable signing key");
                } else {
                    tracing::debug!(%url, keys = keys.len(), "JWKS fetched");
                }
                state.keys = Arc::from(keys);
                state.fetched_at = Some(Instant::now());
                state.last_failed = false;
            }
            Err(err) => {
                tracing::warn!(%url, cause = %err, cached_keys = state.keys.len(), "JWKS fetch failed; keeping cached keys");
                state.last_failed = true;
            }
        }
    }
}

impl State {
    /// Whether the keys were fetched less than `ttl` ago.
    fn is_fresh(&self, ttl: std::time::Duration) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < ttl)
    }
}

/// Whether `keys` hold the key [`choose`] picks for a token declaring `kid` and `alg`.
fn fit(keys: &[VerifyKey], kid: Option<&str>, alg: Algorithm) -> Fit {
    if choose(keys, kid, alg).is_some() {
        Fit::Found
    } else if kid.is_some_and(|kid| keys.iter().any(|key| key.kid.as_deref() == Some(kid))) {
        Fit::WrongAlg
    } else {
        Fit::Missing
    }
}

/// The one key a token declaring `kid` and `alg` is verified with, so that no token
/// costs more than one signature check however many keys the set holds:
///
/// - with a `kid`: the first key with that `kid` that may verify `alg` (none if keys
///   with that `kid` exist but none may); if no key has that `kid`, the key without a
///   `kid` that may verify `alg`, when there is exactly one;
/// - without a `kid`: the key that may verify `alg`, when the set holds exactly one;
///   else the key without a `kid` that may verify `alg`, when there is exactly one.
///   Several candidates make the token ambiguous: none is chosen.
pub(crate) fn choose<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a VerifyKey> {
    let fitting = keys.iter().filter(|key| key.accepts(alg));
    let kidless = || fitting.clone().filter(|key| key.kid.is_none());
    match kid {
        Some(wanted) => {
            let mut named = keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(wanted))
                .peekable();
            if named.peek().is_some() {
                named.find(|key| key.accepts(alg))
            } else {
                only(kidless())
            }
        }
        None => only(fitting.clone()).or_else(|| only(kidless())),
    }
}

/// The single item of `items`; `None` when there are none or several.
fn only<T>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests;
