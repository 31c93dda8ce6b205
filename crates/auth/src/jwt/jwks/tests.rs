//! The cache's timing rules with paused time and a scripted fetcher: one fetch per
//! interval however many misses, shared fetches, stale keys kept on failure, timeouts,
//! and fetches that outlive the caller who started them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use tokio::task::JoinSet;

use super::*;
use crate::jwt::KeyFamily;
use crate::jwt::fetch::FetchFuture;

const TTL: Duration = Duration::from_secs(600);
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the scripted endpoint does on the next fetch.
#[derive(Debug, Clone)]
enum Behaviour {
    /// Answers a set with these `kid`s (P-256 keys).
    Serve(Vec<&'static str>),
    /// Answers after a delay.
    Slow(Duration, Vec<&'static str>),
    /// Fails at once (as a 503 would).
    Fail,
    /// Never answers.
    Hang,
}

/// A scripted JWKS endpoint that counts its fetches.
#[derive(Debug)]
struct Script {
    behaviour: Mutex<Behaviour>,
    fetches: AtomicUsize,
}

/// The fetcher handed to the cache; the test keeps another handle to the script.
#[derive(Debug, Clone)]
struct Scripted(Arc<Script>);

impl Scripted {
    fn new(behaviour: Behaviour) -> Self {
        Scripted(Arc::new(Script {
            behaviour: Mutex::new(behaviour),
            fetches: AtomicUsize::new(0),
        }))
    }

    fn set(&self, behaviour: Behaviour) {
        *self
            .0
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    fn fetches(&self) -> usize {
        self.0.fetches.load(Ordering::SeqCst)
    }
}

impl FetchKeys for Scripted {
    fn fetch(&self) -> FetchFuture {
        self.0.fetches.fetch_add(1, Ordering::SeqCst);
        let behaviour = self
            .0
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(async move {
            match behaviour {
                Behaviour::Serve(kids) => Ok(document(&kids)),
                Behaviour::Slow(delay, kids) => {
                    tokio::time::sleep(delay).await;
                    Ok(document(&kids))
                }
                Behaviour::Fail => Err(FetchError::Status(http::StatusCode::SERVICE_UNAVAILABLE)),
                Behaviour::Hang => std::future::pending().await,
            }
        })
    }
}

/// A JWKS of P-256 keys (RFC 7515 A.3's public key) under the given `kid`s.
fn document(kids: &[&str]) -> Bytes {
    let keys: Vec<_> = kids
        .iter()
        .map(|kid| {
            serde_json::json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            })
        })
        .collect();
    Bytes::from(serde_json::json!({ "keys": keys }).to_string())
}

fn cache(script: &Scripted) -> Arc<JwksCache> {
    let settings = JwksSettings {
        url: Uri::from_static("https://idp.example.com/jwks"),
        cache_ttl: TTL,
        refresh_interval: INTERVAL,
        fetch_timeout: TIMEOUT,
        ca_file: None,
    };
    Arc::new(JwksCache::new(settings, Box::new(script.clone())))
}

async fn lookup(cache: &JwksCache, kid: &str) -> Result<usize, AuthError> {
    cache
        .lookup(Some(kid), Algorithm::ES256)
        .await
        .map(|keys| keys.len())
}

/// Runs `n` lookups of `kid` at once; their outcomes.
async fn storm(
    cache: &Arc<JwksCache>,
    n: usize,
    kid: &'static str,
) -> Vec<Result<usize, AuthError>> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let cache = cache.clone();
        set.spawn(async move { lookup(&cache, kid).await });
    }
    set.join_all().await
}

#[tokio::test(start_paused = true)]
async fn the_first_lookup_fetches_and_fresh_keys_are_reused() {
    let script = Scripted::new(Behaviour::Serve(vec!["k1"]));
    let cache = cache(&script);
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    tokio::time::advance(TTL - Duration::from_secs(1)).await;
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    assert_eq!(script.fetches(), 1);
    // Expired: the next lookup refreshes.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    assert_eq!(script.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refreshes_at_most_once_per_interval() {
    let script = Scripted::new(Behaviour::Serve(vec!["k1"]));
    let cache = cache(&script);
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    script.set(Behaviour::Serve(vec!["k1", "k2"]));
    // Too soon after the last fetch: refused without asking the endpoint.
    assert_eq!(lookup(&cache, "k2").await, Err(AuthError::UnknownKey));
    assert_eq!(script.fetches(), 1);
    tokio::time::advance(INTERVAL).await;
    assert_eq!(lookup(&cache, "k2").await, Ok(2));
    assert_eq!(script.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_unknown_kids_costs_one_fetch_per_interval() {
    let script = Scripted::new(Behaviour::Slow(Duration::from_millis(200), vec!["k1"]));
    let cache = cache(&script);
    let outcomes = storm(&cache, 200, "made-up").await;
    assert!(
        outcomes.iter().all(|o| *o == Err(AuthError::UnknownKey)),
        "{outcomes:?}"
    );
    assert_eq!(script.fetches(), 1, "concurrent misses share one fetch");
    for _ in 0..50 {
        assert_eq!(lookup(&cache, "made-up").await, Err(AuthError::UnknownKey));
    }
    assert_eq!(
        script.fetches(),
        1,
        "misses within the interval fetch nothing"
    );
    tokio::time::advance(INTERVAL).await;
    let outcomes = storm(&cache, 200, "made-up").await;
    assert!(outcomes.iter().all(|o| *o == Err(AuthError::UnknownKey)));
    assert_eq!(script.fetches(), 2);
    // Known keys were never blocked by the storm.
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_keeps_cached_keys_working() {
    let script = Scripted::new(Behaviour::Serve(vec!["k1"]));
    let cache = cache(&script);
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    script.set(Behaviour::Fail);
    tokio::time::advance(TTL).await;
    // Stale, refresh fails: the cached key still verifies.
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    assert_eq!(script.fetches(), 2);
    // A key the cache does not hold cannot be checked: the keys are unavailable.
    assert_eq!(lookup(&cache, "k2").await, Err(AuthError::KeysUnavailable));
    tokio::time::advance(INTERVAL).await;
    assert_eq!(lookup(&cache, "k2").await, Err(AuthError::KeysUnavailable));
    assert_eq!(script.fetches(), 3);
    // The endpoint comes back.
    script.set(Behaviour::Serve(vec!["k1", "k2"]));
    tokio::time::advance(INTERVAL).await;
    assert_eq!(lookup(&cache, "k2").await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_endpoint_times_out_as_unavailable() {
    let script = Scripted::new(Behaviour::Hang);
    let cache = cache(&script);
    let started = Instant::now();
    let outcomes = storm(&cache, 20, "k1").await;
    assert!(
        outcomes
            .iter()
            .all(|o| *o == Err(AuthError::KeysUnavailable)),
        "{outcomes:?}"
    );
    assert!(
        started.elapsed() >= TIMEOUT,
        "refused only once the fetch timed out"
    );
    assert_eq!(script.fetches(), 1);
    assert_eq!(cache.warm_up().await, Err(AuthError::KeysUnavailable));
    assert_eq!(script.fetches(), 1, "warm-up respects the interval too");
}

#[tokio::test(start_paused = true)]
async fn a_fetch_outlives_the_caller_that_started_it() {
    let script = Scripted::new(Behaviour::Slow(Duration::from_secs(1), vec!["k1"]));
    let cache = cache(&script);
    let first = {
        let cache = cache.clone();
        tokio::spawn(async move { lookup(&cache, "k1").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.abort();
    assert_eq!(lookup(&cache, "k1").await, Ok(1));
    assert_eq!(
        script.fetches(),
        1,
        "the second caller waited for the first fetch"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_are_matched_by_kid_and_algorithm() {
    let script = Scripted::new(Behaviour::Serve(vec!["k1", "k2"]));
    let cache = cache(&script);
    assert_eq!(cache.warm_up().await, Ok(()));
    assert_eq!(
        cache
            .lookup(Some("k1"), Algorithm::ES384)
            .await
            .map(|k| k.len()),
        Err(AuthError::AlgorithmNotAllowed)
    );
    // Two keys fit an ES256 token without `kid`: ambiguous, refused.
    assert_eq!(
        cache.lookup(None, Algorithm::ES256).await.map(|k| k.len()),
        Err(AuthError::UnknownKey)
    );
    let keys = cache
        .lookup(Some("k2"), Algorithm::ES256)
        .await
        .expect("k2");
    let chosen = choose(&keys, Some("k2"), Algorithm::ES256).map(|k| k.kid.as_deref());
    assert_eq!(chosen, Some(Some("k2")));
    assert_eq!(script.fetches(), 1);
}

/// A key for [`choose`]: only its `kid`, family and pinned `alg` matter.
fn key(kid: Option<&str>, family: KeyFamily, only: Option<Algorithm>) -> VerifyKey {
    VerifyKey {
        kid: kid.map(str::to_owned),
        family,
        only,
        key: jsonwebtoken::DecodingKey::from_secret(b"unused"),
    }
}

fn rsa(kid: Option<&str>) -> VerifyKey {
    key(kid, KeyFamily::Rsa, None)
}

fn ec(kid: Option<&str>) -> VerifyKey {
    key(kid, KeyFamily::Ec, Some(Algorithm::ES256))
}

/// The index of the key [`choose`] picks, and what [`fit`] says (they must agree).
fn pick(keys: &[VerifyKey], kid: Option<&str>, alg: Algorithm) -> (Option<usize>, Fit) {
    let index = choose(keys, kid, alg).map(|chosen| {
        keys.iter()
            .position(|k| std::ptr::eq(k, chosen))
            .expect("from the set")
    });
    let fit = fit(keys, kid, alg);
    assert_eq!(index.is_some(), fit == Fit::Found, "{kid:?} {alg}");
    (index, fit)
}

#[test]
fn a_kid_chooses_its_own_key_only() {
    let keys = [rsa(None), rsa(Some("a")), ec(Some("e")), rsa(Some("b"))];
    assert_eq!(
        pick(&keys, Some("b"), Algorithm::RS256),
        (Some(3), Fit::Found)
    );
    assert_eq!(
        pick(&keys, Some("a"), Algorithm::PS384),
        (Some(1), Fit::Found)
    );
    // The named key may not verify the alg: refused, no fallback to the key without kid.
    assert_eq!(
        pick(&keys, Some("e"), Algorithm::RS256),
        (None, Fit::WrongAlg)
    );
    assert_eq!(
        pick(&keys, Some("a"), Algorithm::ES256),
        (None, Fit::WrongAlg)
    );
}

#[test]
fn duplicate_kids_choose_the_first_that_fits_the_alg() {
    let keys = [
        key(Some("dup"), KeyFamily::Rsa, Some(Algorithm::RS512)),
        rsa(Some("dup")),
        rsa(Some("dup")),
    ];
    assert_eq!(
        pick(&keys, Some("dup"), Algorithm::RS256),
        (Some(1), Fit::Found)
    );
    assert_eq!(
        pick(&keys, Some("dup"), Algorithm::RS512),
        (Some(0), Fit::Found)
    );
    assert_eq!(
        pick(&keys, Some("dup"), Algorithm::ES256),
        (None, Fit::WrongAlg)
    );
}

#[test]
fn an_unknown_kid_falls_back_to_the_one_key_without_kid_only() {
    // One key without kid fits: it is used (keys with other kids never are).
    let keys = [rsa(Some("a")), ec(None), rsa(None), rsa(Some("b"))];
    assert_eq!(
        pick(&keys, Some("x"), Algorithm::RS256),
        (Some(2), Fit::Found)
    );
    assert_eq!(
        pick(&keys, Some("x"), Algorithm::ES256),
        (Some(1), Fit::Found)
    );
    // Several keys without kid fit: ambiguous.
    let keys = [rsa(None), rsa(Some("a")), rsa(None)];
    assert_eq!(
        pick(&keys, Some("x"), Algorithm::RS256),
        (None, Fit::Missing)
    );
    // None without kid fits the alg, or none has no kid.
    let keys = [ec(None), rsa(Some("a"))];
    assert_eq!(
        pick(&keys, Some("x"), Algorithm::RS256),
        (None, Fit::Missing)
    );
    let keys = [rsa(Some("a")), rsa(Some("b"))];
    assert_eq!(
        pick(&keys, Some("x"), Algorithm::RS256),
        (None, Fit::Missing)
    );
    assert_eq!(pick(&[], Some("x"), Algorithm::RS256), (None, Fit::Missing));
}

#[test]
fn no_kid_chooses_the_one_fitting_key_or_the_one_without_kid() {
    // The only key for the alg, whatever its kid.
    let keys = [ec(Some("e")), rsa(Some("a")), ec(None)];
    assert_eq!(pick(&keys, None, Algorithm::RS256), (Some(1), Fit::Found));
    // Several fit, one of them without kid: that one.
    let keys = [rsa(Some("a")), rsa(None), rsa(Some("b"))];
    assert_eq!(pick(&keys, None, Algorithm::RS256), (Some(1), Fit::Found));
    // Several fit, none or several without kid: ambiguous.
    let keys = [rsa(Some("a")), rsa(Some("b"))];
    assert_eq!(pick(&keys, None, Algorithm::RS256), (None, Fit::Missing));
    let keys = [rsa(None), rsa(Some("a")), rsa(None)];
    assert_eq!(pick(&keys, None, Algorithm::RS256), (None, Fit::Missing));
    let keys = [rsa(Some("dup")), rsa(Some("dup"))];
    assert_eq!(pick(&keys, None, Algorithm::RS256), (None, Fit::Missing));
    // None fits.
    let keys = [ec(Some("e")), ec(None)];
    assert_eq!(pick(&keys, None, Algorithm::RS256), (None, Fit::Missing));
    assert_eq!(pick(&[], None, Algorithm::RS256), (None, Fit::Missing));
}

#[tokio::test(start_paused = true)]
async fn garbage_documents_count_as_failures() {
    #[derive(Debug)]
    struct Garbage;
    impl FetchKeys for Garbage {
        fn fetch(&self) -> FetchFuture {
            Box::pin(async { Ok(Bytes::from_static(b"<html>login</html>")) })
        }
    }
    let settings = JwksSettings::new(Uri::from_static("https://idp.example.com/jwks"));
    let cache = JwksCache::new(settings, Box::new(Garbage));
    assert_eq!(lookup(&cache, "k1").await, Err(AuthError::KeysUnavailable));
}
