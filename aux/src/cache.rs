//! The worker's cache of SSM answers.
//!
//! One moka cache, keyed by what was asked of SSM (the parameter list, or one
//! full parameter name). A parameter, the list, or the fact that a parameter
//! does not exist is kept for `CACHE_TTL_SECONDS` (a missing parameter for at
//! most [`NEGATIVE_TTL_MAX`]); concurrent requests for one key share one SSM
//! call (`try_get_with`). Failures are never cached: the next request asks
//! again.
//!
//! With several edge pods in front of several workers, the edge sends the
//! misses for one parameter to the same worker (consistent hashing), so SSM
//! sees about one call per key per TTL whatever the number of edge pods.
//! Answers say how old they are (`Age`) and how long they stay fresh
//! (`Cache-Control: max-age`), so the edge never keeps a value fresh past the
//! worker's TTL: end to end, a value is at most one TTL old.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use crate::aws::{AwsError, Parameter};

/// Upper bound on how long "this parameter does not exist" is kept.
pub const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(5);

/// What SSM said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsmAnswer {
    Parameter(Parameter),
    NotFound,
    List(Vec<String>),
}

/// An answer and when SSM gave it.
#[derive(Debug)]
pub struct Fetched {
    pub answer: SsmAnswer,
    pub fetched_at: Instant,
    /// How long it stays fresh after `fetched_at`.
    pub ttl: Duration,
}

impl Fetched {
    /// Whole seconds since SSM answered (the `Age` header).
    pub fn age_seconds(&self) -> u64 {
        self.fetched_at.elapsed().as_secs()
    }

    /// The `max-age` it was stored with, in whole seconds.
    pub fn max_age_seconds(&self) -> u64 {
        self.ttl.as_secs()
    }
}

/// Whether the answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

impl Lookup {
    pub fn label(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
        }
    }
}

struct PerAnswer;

impl Expiry<String, Arc<Fetched>> for PerAnswer {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Fetched>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache; cheap to clone. With a zero TTL every lookup asks SSM (still
/// one call per request, never shared).
#[derive(Clone)]
pub struct SsmCache {
    ttl: Duration,
    negative_ttl: Duration,
    entries: Option<Cache<String, Arc<Fetched>>>,
}

impl std::fmt::Debug for SsmCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsmCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SsmCache {
    pub fn new(ttl: Duration, max_entries: u64) -> Self {
        let entries = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerAnswer)
                .build()
        });
        Self {
            ttl,
            negative_ttl: ttl.min(NEGATIVE_TTL_MAX),
            entries,
        }
    }

    /// Whether answers are cached (and so carry freshness headers).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The answer for `key`, from the cache or from `fetch` (run once for
    /// all concurrent callers). A `ParameterNotFound` from SSM is an answer
    /// (`SsmAnswer::NotFound`), other failures are errors and not kept.
    pub async fn get_or_fetch<F>(
        &self,
        key: String,
        fetch: F,
    ) -> Result<(Arc<Fetched>, Lookup), AwsError>
    where
        F: Future<Output = Result<SsmAnswer, AwsError>>,
    {
        let stamp = |answer: SsmAnswer| {
            let ttl = if answer == SsmAnswer::NotFound {
                self.negative_ttl
            } else {
                self.ttl
            };
            Arc::new(Fetched {
                answer,
                fetched_at: Instant::now(),
                ttl,
            })
        };
        let Some(entries) = &self.entries else {
            return fetch.await.map(|a| (stamp(a), Lookup::Miss));
        };
        if let Some(hit) = entries.get(&key).await {
            return Ok((hit, Lookup::Hit));
        }
        let mut ran = false;
        let result = entries
            .try_get_with(key, async {
                ran = true;
                fetch.await.map(stamp)
            })
            .await;
        match result {
            Ok(fetched) => Ok((fetched, if ran { Lookup::Miss } else { Lookup::Hit })),
            Err(e) => Err(AwsError::clone(&e)),
        }
    }

    /// Entries held now (approximate, as moka's counts are).
    pub async fn entry_count(&self) -> u64 {
        match &self.entries {
            Some(c) => {
                c.run_pending_tasks().await;
                c.entry_count()
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::aws::{AwsErrorKind, Operation, ParameterKind};

    use super::*;

    fn param(v: &str) -> SsmAnswer {
        SsmAnswer::Parameter(Parameter {
            name: "/p/x".into(),
            value: v.into(),
            kind: ParameterKind::String,
            version: 1,
        })
    }

    #[tokio::test]
    async fn answers_are_reused_and_concurrent_misses_share_one_call() {
        let cache = SsmCache::new(Duration::from_secs(30), 100);
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(param("v"))
        };
        let (a, b) = tokio::join!(
            cache.get_or_fetch("k".into(), fetch()),
            cache.get_or_fetch("k".into(), fetch())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let lookups = [a.unwrap().1, b.unwrap().1];
        assert!(lookups.contains(&Lookup::Miss) && lookups.contains(&Lookup::Hit));
        let (f, l) = cache.get_or_fetch("k".into(), fetch()).await.unwrap();
        assert_eq!((l, f.max_age_seconds()), (Lookup::Hit, 30));
        assert_eq!(f.answer, param("v"));
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_not_found_is_kept_briefly() {
        let cache = SsmCache::new(Duration::from_secs(30), 100);
        let err = AwsError {
            operation: Operation::GetParameter,
            kind: AwsErrorKind::Throttled,
            detail: "slow down".into(),
        };
        let r = cache
            .get_or_fetch("k".into(), async { Err(err.clone()) })
            .await;
        assert_eq!(r.unwrap_err().kind, AwsErrorKind::Throttled);
        let (f, l) = cache
            .get_or_fetch("k".into(), async { Ok(param("v")) })
            .await
            .unwrap();
        assert_eq!((l, &f.answer), (Lookup::Miss, &param("v")));
        let (f, _) = cache
            .get_or_fetch("gone".into(), async { Ok(SsmAnswer::NotFound) })
            .await
            .unwrap();
        assert_eq!(f.max_age_seconds(), NEGATIVE_TTL_MAX.as_secs());
    }

    #[tokio::test]
    async fn a_zero_ttl_turns_the_cache_off() {
        let cache = SsmCache::new(Duration::ZERO, 100);
        assert!(!cache.enabled());
        for _ in 0..2 {
            let (_, l) = cache
                .get_or_fetch("k".into(), async { Ok(param("v")) })
                .await
                .unwrap();
            assert_eq!(l, Lookup::Miss);
        }
    }
}
