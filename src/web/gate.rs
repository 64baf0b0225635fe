//! Bounded heavy work: at most `server.max_concurrent_builds` computations (a report, a
//! metric series, analyst SQL, attribution) run at once; the rest wait their turn in arrival
//! order.
//!
//! A request waits at most half its time limit (`server.request_timeout_ms / 2`), keeping the
//! other half to compute; one that would wait longer gets `503` with `Retry-After`, so a
//! client backs off instead of piling on. Cheap answers (a kept report, `/healthz`, the
//! catalog, static pages) never pass through here, so they never wait behind heavy ones. The
//! background build waits as long as it takes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// Seconds a refused client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The error code of a request refused because the heavy work queue is full.
pub const BUSY: &str = "server_busy";

/// The queue of heavy computations.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    size: usize,
    waiting: AtomicUsize,
    wait_limit: Duration,
}

/// A turn to compute; the next waiter goes when it is dropped.
#[derive(Debug)]
pub struct Turn {
    _permit: OwnedSemaphorePermit,
}

/// What the queue holds now (for `/healthz`).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Load {
    /// Computations allowed at once.
    pub max_concurrent_builds: usize,
    /// Computing now.
    pub running: usize,
    /// Waiting for a turn.
    pub waiting: usize,
}

impl Gate {
    /// A queue of `size` slots whose requests wait at most `wait_limit`.
    pub fn new(size: usize, wait_limit: Duration) -> Self {
        let size = size.max(1);
        Self {
            slots: Arc::new(Semaphore::new(size)),
            size,
            waiting: AtomicUsize::new(0),
            wait_limit,
        }
    }

    /// Waits for a turn for a request: refused with [`BUSY`] when none comes in time.
    pub async fn admit(&self, what: &str) -> Result<Turn> {
        match tokio::time::timeout(self.wait_limit, self.wait()).await {
            Ok(turn) => turn,
            Err(_) => {
                crate::telemetry::count(
                    "kpi_heavy_refused_total",
                    "Heavy requests refused with 503 because no turn came within their deadline.",
                    &[],
                );
                Err(Error::unavailable(
                    BUSY,
                    format!(
                        "the server is busy: {what} waited {:.1} s for one of {} computation slots; retry in {RETRY_AFTER_SECONDS} s (server.max_concurrent_builds sets the slots)",
                        self.wait_limit.as_secs_f64(),
                        self.size
                    ),
                ))
            }
        }
    }

    /// Waits for a turn however long it takes (the background build).
    pub async fn wait(&self) -> Result<Turn> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        // Counted out however the wait ends (a turn, or a caller that gave up).
        let _waiting = Waiting(&self.waiting);
        let permit = Arc::clone(&self.slots).acquire_owned().await;
        let permit =
            permit.map_err(|_| Error::internal("the heavy work queue was closed".to_string()))?;
        Ok(Turn { _permit: permit })
    }

    /// Running and waiting computations.
    pub fn load(&self) -> Load {
        Load {
            max_concurrent_builds: self.size,
            running: self.size - self.slots.available_permits(),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// One waiter, counted until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_after_the_wait_limit_and_frees_on_drop() {
        let gate = Gate::new(1, Duration::from_millis(50));
        let first = gate.admit("a report").await.expect("a free slot");
        assert_eq!(gate.load().running, 1);
        let refused = gate
            .admit("another report")
            .await
            .expect_err("no slot in time");
        assert_eq!(refused.code, BUSY);
        assert!(refused.message.contains("retry in"), "{}", refused.message);
        drop(first);
        let again = gate.admit("another report").await;
        assert!(again.is_ok(), "the slot is free again");
        assert_eq!(gate.load().waiting, 0);
    }
}
