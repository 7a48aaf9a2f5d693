//! The answer cache for `/parameters` and `/parameter/{name}`.
//!
//! Two moka caches keyed by normalised path (`/parameters`,
//! `/parameter/<decoded name>`):
//!
//! - `fresh` holds answers while they may be served as they are: a `200` for
//!   `CACHE_TTL_SECONDS`, a `404 parameter_not_found` for
//!   [`NEGATIVE_TTL_MAX`] at most (negative caching). A miss goes through
//!   `try_get_with`, so concurrent misses for one key make exactly one worker
//!   call; the others wait for it and share its result, success or failure.
//! - `stale` keeps every `200` for `CACHE_TTL_SECONDS +
//!   CACHE_STALE_IF_ERROR_SECONDS`. It is only read when the worker fails
//!   (unreachable, timeout, `5xx`); the stale answer is then served instead
//!   of the error.
//!
//! Other worker answers (`400`, `403`, ...) pass through uncached.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use crate::answer::Answer;
use crate::metrics::CacheResult;

/// Upper bound on how long a `404 parameter_not_found` is cached.
pub const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(5);

/// What a lookup produced.
#[derive(Debug)]
pub enum Lookup {
    /// Served from the cache (`HIT`), or fetched for this request or a
    /// concurrent one (`MISS`), or a stale copy served because the worker
    /// failed (`STALE`).
    Cached {
        answer: Arc<Answer>,
        result: CacheResult,
        /// This request waited for another request's worker call.
        coalesced: bool,
    },
    /// An answer that is not cached (the worker's `4xx` other than a
    /// negative, or a failure with no stale copy to fall back on).
    Uncached {
        answer: Arc<Answer>,
        coalesced: bool,
    },
}

struct PerEntryTtl {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<String, Arc<Answer>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Answer>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.is_negative() {
            self.negative_ttl
        } else {
            self.ttl
        })
    }
}

/// The cache shared by every request.
#[derive(Clone)]
pub struct AnswerCache {
    fresh: Cache<String, Arc<Answer>>,
    stale: Cache<String, Arc<Answer>>,
    stale_enabled: bool,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("entries", &self.entry_count())
            .finish_non_exhaustive()
    }
}

impl AnswerCache {
    pub fn new(ttl: Duration, stale_if_error: Duration, max_entries: u64) -> Self {
        let fresh = Cache::builder()
            .max_capacity(max_entries)
            .expire_after(PerEntryTtl {
                ttl,
                negative_ttl: ttl.min(NEGATIVE_TTL_MAX),
            })
            .build();
        let stale = Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl + stale_if_error)
            .build();
        Self {
            fresh,
            stale,
            stale_enabled: !(ttl + stale_if_error).is_zero(),
        }
    }

    /// Fresh answers plus stale-if-error copies held now (approximate, as
    /// moka's counts are).
    pub fn entry_count(&self) -> u64 {
        self.fresh.entry_count() + self.stale.entry_count()
    }

    /// Applies pending evictions, then counts: what `/metrics` reports.
    pub async fn settled_entry_count(&self) -> u64 {
        self.fresh.run_pending_tasks().await;
        self.stale.run_pending_tasks().await;
        self.entry_count()
    }

    /// The hot path: a fresh answer, without allocating.
    pub async fn get_fresh(&self, key: &str) -> Option<Arc<Answer>> {
        self.fresh.get(key).await
    }

    /// Looks `key` up; on a miss runs `fetch` (once for all concurrent
    /// callers) and applies the caching rules above.
    pub async fn get_or_fetch<F>(&self, key: &str, fetch: F) -> Lookup
    where
        F: Future<Output = Answer>,
    {
        if let Some(answer) = self.fresh.get(key).await {
            return Lookup::Cached {
                answer,
                result: CacheResult::Hit,
                coalesced: false,
            };
        }
        let mut ran = false;
        let stale = &self.stale;
        let stale_enabled = self.stale_enabled;
        let result = self
            .fresh
            .try_get_with(key.to_owned(), async {
                ran = true;
                let answer = fetch.await;
                if answer.status == 200 || answer.is_negative() {
                    let answer = Arc::new(answer);
                    if answer.status == 200 && stale_enabled {
                        stale.insert(key.to_owned(), answer.clone()).await;
                    }
                    Ok(answer)
                } else {
                    Err(answer)
                }
            })
            .await;
        let coalesced = !ran;
        match result {
            Ok(answer) => Lookup::Cached {
                answer,
                result: CacheResult::Miss,
                coalesced,
            },
            Err(failed) => {
                if failed.is_failure()
                    && stale_enabled
                    && let Some(answer) = self.stale.get(key).await
                {
                    return Lookup::Cached {
                        answer,
                        result: CacheResult::Stale,
                        coalesced,
                    };
                }
                Lookup::Uncached {
                    answer: failed,
                    coalesced,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use service_common::ErrorCode;

    use super::*;

    fn ok(body: &'static str) -> Answer {
        Answer {
            status: 200,
            body: body.into(),
            retry_after: None,
            stored_at: Instant::now(),
            error_code: None,
        }
    }

    fn result(l: &Lookup) -> Option<CacheResult> {
        match l {
            Lookup::Cached { result, .. } => Some(*result),
            Lookup::Uncached { .. } => None,
        }
    }

    #[tokio::test]
    async fn miss_then_hit() {
        let cache = AnswerCache::new(Duration::from_secs(30), Duration::from_secs(300), 100);
        let l = cache.get_or_fetch("/parameters", async { ok("a") }).await;
        assert_eq!(result(&l), Some(CacheResult::Miss));
        let l = cache.get_or_fetch("/parameters", async { ok("b") }).await;
        assert_eq!(result(&l), Some(CacheResult::Hit));
        assert!(cache.get_fresh("/parameters").await.is_some());
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_call() {
        let cache = AnswerCache::new(Duration::from_secs(30), Duration::from_secs(300), 100);
        let calls = AtomicUsize::new(0);
        let lookups = (0..20).map(|_| {
            cache.get_or_fetch("/parameter/x", async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                ok("x")
            })
        });
        let results = futures_join_all(lookups).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let coalesced = results
            .iter()
            .filter(|l| {
                matches!(
                    l,
                    Lookup::Cached {
                        coalesced: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(coalesced, 19);
    }

    #[tokio::test]
    async fn failure_serves_stale_and_passes_other_answers_through() {
        let cache = AnswerCache::new(Duration::from_millis(50), Duration::from_secs(300), 100);
        cache.get_or_fetch("/parameters", async { ok("a") }).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        let l = cache
            .get_or_fetch("/parameters", async {
                Answer::error_default(ErrorCode::UpstreamUnavailable, "1")
            })
            .await;
        assert_eq!(result(&l), Some(CacheResult::Stale));
        // No stale copy for another key: the failure passes through.
        let l = cache
            .get_or_fetch("/parameter/y", async {
                Answer::error_default(ErrorCode::UpstreamTimeout, "1")
            })
            .await;
        assert!(matches!(l, Lookup::Uncached { ref answer, .. } if answer.status == 504));
        // A 400 is never cached nor replaced by a stale copy.
        let l = cache
            .get_or_fetch("/parameters", async {
                Answer::error_default(ErrorCode::SecureParameter, "1")
            })
            .await;
        assert!(matches!(l, Lookup::Uncached { ref answer, .. } if answer.status == 403));
    }

    #[tokio::test]
    async fn negative_answers_are_cached_briefly() {
        let cache = AnswerCache::new(Duration::from_secs(30), Duration::from_secs(300), 100);
        let nf = || async { Answer::error_default(ErrorCode::ParameterNotFound, "1") };
        let l = cache.get_or_fetch("/parameter/nope", nf()).await;
        assert_eq!(result(&l), Some(CacheResult::Miss));
        let l = cache.get_or_fetch("/parameter/nope", nf()).await;
        assert_eq!(result(&l), Some(CacheResult::Hit));
    }

    async fn futures_join_all<F: Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
        let mut set = Vec::new();
        for f in fs {
            set.push(f);
        }
        // Poll all futures concurrently on this task.
        let mut pinned: Vec<_> = set.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (i, f) in pinned.iter_mut().enumerate() {
                if out[i].is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => out[i] = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().flatten().collect()
    }
}
