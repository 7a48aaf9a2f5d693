//! The answer cache for `/parameters` and `/parameter/{name}`: one moka
//! entry per key holding the prepared answer and its deadlines.
//!
//! ```text
//!  stored        fresh_until      revalidate_until            stale_until
//!    |--- fresh ---|--- stale-while-revalidate ---|                  |
//!    |             |------------ stale-if-error (failures only) -----|
//! ```
//!
//! - **Fresh** (`HIT`): served as is. A `200` stays fresh for
//!   `CACHE_TTL_SECONDS`, or less when the worker says its answer is older
//!   (`Age`) or fresh for less (`max-age`): a value is never older than one
//!   TTL end to end. A definitive negative (`404 parameter_not_found`,
//!   `403 secure_parameter`) for `CACHE_NEGATIVE_TTL_SECONDS`.
//! - **Revalidating** (`STALE`): for `CACHE_STALE_WHILE_REVALIDATE_SECONDS`
//!   after that, a `200` is served at once while one background request
//!   refreshes it.
//! - **Stale on error** (`STALE`): until `CACHE_STALE_IF_ERROR_SECONDS` after
//!   freshness ended, a `200` replaces a worker failure (timeout, connection
//!   failure, `5xx`). After a failure the entry remembers it for
//!   [`FAILURE_MEMORY`]: requests in that window get the stale copy at once
//!   instead of each waiting for the worker again.
//! - A definitive answer **replaces** what was there: a `404` or `403` for a
//!   key with a cached `200` removes the `200` for good, so a deleted
//!   parameter (or one turned into a SecureString) never comes back as
//!   `STALE`.
//!
//! Answers the worker marks `no-store` (decrypted SecureString values),
//! other `4xx` and failures with no stale copy are not stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::answer::Answer;
use crate::config::CacheConfig;

/// How long a worker failure for a key is remembered.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(1);

/// One key's cached answer and its deadlines.
#[derive(Debug)]
pub struct Entry {
    pub answer: Arc<Answer>,
    /// When the edge received it.
    pub stored_at: Instant,
    /// Its age when it arrived (the worker's `Age`), in seconds.
    pub age_at_store: u64,
    pub fresh_until: Instant,
    pub revalidate_until: Instant,
    pub stale_until: Instant,
    /// Until when a recent worker failure is remembered.
    pub failed_until: Option<Instant>,
}

impl Entry {
    /// The `Age` header: seconds since the worker (or SSM behind it) produced
    /// the answer.
    pub fn age(&self, now: Instant) -> u64 {
        self.age_at_store + now.saturating_duration_since(self.stored_at).as_secs()
    }

    /// Seconds of freshness left, rounded down (`max-age` for clients).
    pub fn fresh_for(&self, now: Instant) -> u64 {
        self.fresh_until.saturating_duration_since(now).as_secs()
    }

    fn is_ok(&self) -> bool {
        self.answer.status == 200
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// Fresh: serve it.
    Fresh(Arc<Entry>),
    /// Stale within stale-while-revalidate: serve it, refresh in the
    /// background.
    Revalidate(Arc<Entry>),
    /// Stale, and the worker failed for this key a moment ago: serve it.
    RecentFailure(Arc<Entry>),
    /// Stale: usable only if the worker fails (`Some`), or nothing at all.
    Miss(Option<Arc<Entry>>),
}

/// What storing a worker answer did.
#[derive(Debug)]
pub enum Stored {
    /// Cached (replacing whatever was there).
    Cached(Arc<Entry>),
    /// A failure, and a stale `200` covers it (now remembered as failed).
    StaleOnError(Arc<Entry>),
    /// Not cacheable; any cached `200` was left as it was (or removed, for a
    /// `no-store` answer).
    NotCached,
}

struct UntilStale;

impl Expiry<String, Arc<Entry>> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.stale_until.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<Entry>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// Keys are normalised paths (validated names): a fast non-cryptographic
/// hash with a per-process random seed is enough.
type Hasher = foldhash::fast::RandomState;

/// The cache shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AnswerCache {
    entries: Cache<String, Arc<Entry>, Hasher>,
    config: CacheConfig,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("entries", &self.entries.entry_count())
            .field("config", &self.config)
            .finish()
    }
}

impl AnswerCache {
    pub fn new(config: CacheConfig) -> Self {
        let entries = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(UntilStale)
            .build_with_hasher(Hasher::default());
        Self { entries, config }
    }

    /// The hot path: one map read, no allocation.
    pub fn lookup(&self, key: &str, now: Instant) -> Found {
        let Some(entry) = self.entries.get(key) else {
            return Found::Miss(None);
        };
        if now < entry.fresh_until {
            return Found::Fresh(entry);
        }
        if !entry.is_ok() || now >= entry.stale_until {
            return Found::Miss(None);
        }
        if now < entry.revalidate_until {
            return Found::Revalidate(entry);
        }
        if entry.failed_until.is_some_and(|t| now < t) {
            return Found::RecentFailure(entry);
        }
        Found::Miss(Some(entry))
    }

    /// A fresh entry, if any (the first check of the hot path).
    pub fn fresh(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        self.entries.get(key).filter(|e| now < e.fresh_until)
    }

    /// Applies the caching rules to a worker answer for `key`.
    pub fn store(&self, key: &str, answer: Arc<Answer>, now: Instant) -> Stored {
        let c = &self.config;
        if answer.status == 200 && !answer.freshness.no_store {
            let mut ttl = c.ttl;
            if let Some(max_age) = answer.freshness.max_age {
                ttl = ttl.min(Duration::from_secs(
                    max_age.saturating_sub(answer.freshness.age),
                ));
            }
            let fresh_until = now + ttl;
            let entry = Arc::new(Entry {
                age_at_store: answer.freshness.age,
                answer,
                stored_at: now,
                fresh_until,
                revalidate_until: fresh_until + c.stale_while_revalidate,
                stale_until: fresh_until + c.stale_while_revalidate.max(c.stale_if_error),
                failed_until: None,
            });
            self.entries.insert(key.to_owned(), entry.clone());
            return Stored::Cached(entry);
        }
        if answer.is_definitive_negative() {
            let mut ttl = c.negative_ttl;
            if let Some(max_age) = answer.freshness.max_age {
                ttl = ttl.min(Duration::from_secs(
                    max_age.saturating_sub(answer.freshness.age),
                ));
            }
            if ttl.is_zero() {
                self.entries.invalidate(key);
                return Stored::NotCached;
            }
            let fresh_until = now + ttl;
            let entry = Arc::new(Entry {
                age_at_store: answer.freshness.age,
                answer,
                stored_at: now,
                fresh_until,
                revalidate_until: fresh_until,
                stale_until: fresh_until,
                failed_until: None,
            });
            self.entries.insert(key.to_owned(), entry.clone());
            return Stored::Cached(entry);
        }
        if answer.status == 200 {
            // `no-store`: nothing older may be served for this key either.
            self.entries.invalidate(key);
            return Stored::NotCached;
        }
        if answer.is_failure() {
            return self.stale_on_error(key, now);
        }
        Stored::NotCached
    }

    /// The worker failed for `key`: the stale `200`, if one is still within
    /// stale-if-error, now remembered as failed.
    pub fn stale_on_error(&self, key: &str, now: Instant) -> Stored {
        let Some(old) = self.entries.get(key) else {
            return Stored::NotCached;
        };
        if !old.is_ok() || now >= old.stale_until {
            return Stored::NotCached;
        }
        let marked = Arc::new(Entry {
            answer: old.answer.clone(),
            stored_at: old.stored_at,
            age_at_store: old.age_at_store,
            fresh_until: old.fresh_until,
            revalidate_until: old.revalidate_until,
            stale_until: old.stale_until,
            failed_until: Some(now + FAILURE_MEMORY),
        });
        self.entries.insert(key.to_owned(), marked.clone());
        Stored::StaleOnError(marked)
    }

    /// A stale `200` that may stand in for an answer the edge refuses to
    /// fetch right now (rate limit, overload).
    pub fn stale_copy(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        self.entries
            .get(key)
            .filter(|e| e.is_ok() && now < e.stale_until)
    }

    /// Removes one key; returns how many entries went (0 or 1).
    pub fn purge(&self, key: &str) -> u64 {
        u64::from(self.entries.remove(key).is_some())
    }

    /// Removes everything; returns how many entries went.
    pub fn purge_all(&self) -> u64 {
        self.entries.run_pending_tasks();
        let n = self.entries.entry_count();
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
        n
    }

    /// Applies pending evictions, then counts: what `/metrics` reports.
    pub fn settled_entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use service_common::ErrorCode;

    use super::*;
    use crate::answer::WorkerFreshness;

    fn config() -> CacheConfig {
        CacheConfig {
            ttl: Duration::from_secs(30),
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            max_entries: 100,
        }
    }

    fn ok(body: &str, freshness: WorkerFreshness) -> Arc<Answer> {
        Arc::new(Answer::from_worker(200, body.as_bytes(), None, freshness, "1").unwrap())
    }

    fn worker_error(status: u16, code: &str) -> Arc<Answer> {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        Arc::new(
            Answer::from_worker(
                status,
                body.as_bytes(),
                None,
                WorkerFreshness::default(),
                "1",
            )
            .unwrap(),
        )
    }

    #[test]
    fn an_entry_goes_fresh_then_revalidating_then_stale_on_error_only() {
        let cache = AnswerCache::new(config());
        let t0 = Instant::now();
        assert!(matches!(
            cache.store("/k", ok("{}", WorkerFreshness::default()), t0),
            Stored::Cached(_)
        ));
        assert!(matches!(
            cache.lookup("/k", t0 + Duration::from_secs(29)),
            Found::Fresh(_)
        ));
        assert!(matches!(
            cache.lookup("/k", t0 + Duration::from_secs(31)),
            Found::Revalidate(_)
        ));
        assert!(matches!(
            cache.lookup("/k", t0 + Duration::from_secs(45)),
            Found::Miss(Some(_))
        ));
        // A failure within stale-if-error: the stale copy, remembered a second.
        let t1 = t0 + Duration::from_secs(45);
        assert!(matches!(
            cache.store("/k", worker_error(503, "aws_throttled"), t1),
            Stored::StaleOnError(_)
        ));
        assert!(matches!(
            cache.lookup("/k", t1 + Duration::from_millis(500)),
            Found::RecentFailure(_)
        ));
        assert!(matches!(
            cache.lookup("/k", t1 + Duration::from_millis(1500)),
            Found::Miss(Some(_))
        ));
        assert!(matches!(
            cache.lookup("/k", t0 + Duration::from_secs(331)),
            Found::Miss(None)
        ));
    }

    #[test]
    fn a_definitive_negative_replaces_a_cached_200_for_good() {
        let cache = AnswerCache::new(config());
        let t0 = Instant::now();
        cache.store("/k", ok(r#"{"value":"v"}"#, WorkerFreshness::default()), t0);
        let t1 = t0 + Duration::from_secs(31);
        assert!(matches!(
            cache.store("/k", worker_error(404, "parameter_not_found"), t1),
            Stored::Cached(_)
        ));
        assert!(matches!(cache.lookup("/k", t1), Found::Fresh(e) if e.answer.status == 404));
        // After the negative expires, a failure finds no 200 to serve.
        let t2 = t1 + Duration::from_secs(6);
        assert!(matches!(cache.lookup("/k", t2), Found::Miss(None)));
        assert!(matches!(
            cache.store("/k", worker_error(504, "aws_timeout"), t2),
            Stored::NotCached
        ));
        // The same for a parameter turned into a SecureString.
        cache.store("/s", ok(r#"{"value":"v"}"#, WorkerFreshness::default()), t0);
        cache.store("/s", worker_error(403, "secure_parameter"), t1);
        assert!(matches!(
            cache.store("/s", worker_error(502, "aws_error"), t2),
            Stored::NotCached
        ));
    }

    #[test]
    fn the_workers_age_shortens_freshness() {
        let cache = AnswerCache::new(config());
        let t0 = Instant::now();
        let f = WorkerFreshness {
            no_store: false,
            max_age: Some(30),
            age: 25,
        };
        let Stored::Cached(e) = cache.store("/k", ok("{}", f), t0) else {
            panic!("not cached")
        };
        assert_eq!(e.fresh_for(t0), 5);
        assert_eq!(e.age(t0 + Duration::from_secs(3)), 28);
        assert!(matches!(
            cache.lookup("/k", t0 + Duration::from_secs(6)),
            Found::Revalidate(_)
        ));
    }

    #[test]
    fn no_store_answers_are_not_kept_and_evict_older_ones() {
        let cache = AnswerCache::new(config());
        let t0 = Instant::now();
        cache.store("/k", ok("{}", WorkerFreshness::default()), t0);
        let secret = ok(
            r#"{"value":"x","type":"SecureString"}"#,
            WorkerFreshness::default(),
        );
        assert!(matches!(cache.store("/k", secret, t0), Stored::NotCached));
        assert!(matches!(cache.lookup("/k", t0), Found::Miss(None)));
        let bad = Arc::new(Answer::error_default(ErrorCode::InvalidParameterName, "1"));
        assert!(matches!(cache.store("/k", bad, t0), Stored::NotCached));
    }

    #[test]
    fn purge() {
        let cache = AnswerCache::new(config());
        let t0 = Instant::now();
        cache.store("/a", ok("{}", WorkerFreshness::default()), t0);
        cache.store("/b", ok("{}", WorkerFreshness::default()), t0);
        assert_eq!(cache.purge("/a"), 1);
        assert_eq!(cache.purge("/a"), 0);
        assert_eq!(cache.purge_all(), 1);
        assert!(matches!(cache.lookup("/b", t0), Found::Miss(None)));
    }
}
