//! Request coalescing: at most one worker call in flight per key.
//!
//! The first request for a key that needs the worker starts a *flight*, a
//! spawned task, so it completes (and fills the cache) even if every client
//! waiting for it goes away; concurrent requests for the same key join it
//! and share its outcome. A flight removes itself from the table when it
//! ends, however it ends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// A flight's shared result; `None` if the task was lost (a panic).
pub type Landing<T> = Shared<BoxFuture<'static, Option<T>>>;

/// The flights in progress, by key.
pub struct Flights<T: Clone + Send + Sync + 'static> {
    table: Arc<Mutex<HashMap<String, Landing<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.len())
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Default for Flights<T> {
    fn default() -> Self {
        Self {
            table: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// How a caller relates to a flight.
pub enum Joined<T: Clone + Send + Sync + 'static> {
    /// Another request's flight: wait for it.
    Follower(Landing<T>),
    /// This request started it.
    Leader(Landing<T>),
    /// No flight exists and `start` declined to begin one.
    Declined,
}

impl<T: Clone + Send + Sync + 'static> std::fmt::Debug for Joined<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Joined::Follower(_) => "Follower",
            Joined::Leader(_) => "Leader",
            Joined::Declined => "Declined",
        })
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Flights in progress now.
    pub fn len(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Joins the flight for `key`, or asks `start` for a future and runs it
    /// as a new flight. `start` runs under the table's lock, so it must be
    /// quick and never wait (it decides admission and builds the future).
    pub fn join_or_start<F, Fut>(&self, key: &str, start: F) -> Joined<T>
    where
        F: FnOnce() -> Option<Fut>,
        Fut: Future<Output = T> + Send + 'static,
    {
        let Ok(mut table) = self.table.lock() else {
            return Joined::Declined;
        };
        if let Some(landing) = table.get(key) {
            return Joined::Follower(landing.clone());
        }
        let Some(work) = start() else {
            return Joined::Declined;
        };
        let owned_key = key.to_owned();
        let guard = Remove {
            table: self.table.clone(),
            key: owned_key.clone(),
        };
        let task = tokio::spawn(async move {
            let _remove = guard;
            work.await
        });
        let landing: Landing<T> = task.map(Result::ok).boxed().shared();
        table.insert(owned_key, landing.clone());
        Joined::Leader(landing)
    }
}

/// Removes a flight's key from the table when its task ends (also on panic
/// or abort). The insert happens under the same lock, before this can run.
struct Remove<T: Clone + Send + Sync + 'static> {
    table: Arc<Mutex<HashMap<String, Landing<T>>>>,
    key: String,
}

impl<T: Clone + Send + Sync + 'static> Drop for Remove<T> {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_flight_and_it_lands_once() {
        let flights: Flights<u32> = Flights::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut waits = Vec::new();
        let mut leaders = 0;
        for _ in 0..10 {
            let runs = runs.clone();
            match flights.join_or_start("k", move || {
                Some(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    7
                })
            }) {
                Joined::Leader(l) => {
                    leaders += 1;
                    waits.push(l);
                }
                Joined::Follower(l) => waits.push(l),
                Joined::Declined => panic!("declined"),
            }
        }
        assert_eq!(leaders, 1);
        for w in waits {
            assert_eq!(w.await, Some(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Landed flights leave the table.
        for _ in 0..50 {
            if flights.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_flight_outlives_its_waiters_and_a_declined_start_leaves_nothing() {
        let flights: Flights<u32> = Flights::new();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let landing = match flights.join_or_start("k", move || {
            Some(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                d.fetch_add(1, Ordering::SeqCst);
                1
            })
        }) {
            Joined::Leader(l) => l,
            _ => panic!("expected to lead"),
        };
        drop(landing);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "ran although nobody waited");
        assert!(matches!(
            flights.join_or_start("other", || None::<std::future::Ready<u32>>),
            Joined::Declined
        ));
        assert!(flights.is_empty());
    }
}
