//! The validation pool: entry validation (signature verification above all)
//! runs here, off the HTTP workers, so that one expensive request cannot stall
//! `/ping`, the probes or the reads (issue 12). With one CPU actix runs one
//! worker; validating on it would leave every other route waiting.
//!
//! Jobs go to one of two lanes by the size of the request they validate:
//! - the **small lane** (bodies under [`LARGE_JOB_BYTES`], which is every
//!   hashedrekord and nearly every attestation) runs `threads` jobs at once
//!   and lets `queue` more wait;
//! - the **large lane** runs at most half as many (at least one) and lets as
//!   many wait as it runs.
//!
//! Each lane is first come, first served, so without the split one large
//! body (tens of milliseconds of parsing at the 32 MiB limit) would hold up
//! every small job queued behind it: 8 connections sending large bodies cut
//! 64 honest clients' creates to a fourteenth (`benches/hostile.rs flood`).
//! With it, small jobs never wait for a large one, and large bodies get the
//! cores the lane's threads win from the scheduler, no more.
//!
//! Past a lane's places a request is refused at once with
//! [`ApiError::Pushback`] (503 with `Retry-After`), as the submission pool
//! refuses entries, instead of piling up work the server cannot finish.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::ApiError;

/// Request bodies of at least this many bytes are validated in the large lane.
pub const LARGE_JOB_BYTES: usize = 64 << 10;

/// A bounded pool that runs CPU-bound validation off the HTTP workers.
#[derive(Debug)]
pub struct ValidationPool {
    small: Lane,
    large: Lane,
}

/// One first-come, first-served lane of the pool.
#[derive(Debug)]
struct Lane {
    /// One permit per job that may be admitted (running or waiting).
    admitted: Arc<Semaphore>,
    /// One permit per job that may run at once.
    running: Arc<Semaphore>,
    /// Jobs that may be admitted: threads + queue.
    size: usize,
}

impl Lane {
    fn new(threads: usize, queue: usize) -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(threads + queue)),
            running: Arc::new(Semaphore::new(threads)),
            size: threads + queue,
        }
    }

    fn in_use(&self) -> usize {
        self.size - self.admitted.available_permits()
    }
}

impl ValidationPool {
    /// A pool whose small lane runs `threads` jobs at once and lets `queue`
    /// more wait; its large lane runs `max(1, threads / 2)` and lets as many wait.
    ///
    /// # Panics
    /// If `threads` is 0 (the config refuses it).
    #[must_use]
    pub fn new(threads: usize, queue: usize) -> Self {
        assert!(threads > 0, "a validation pool needs a thread");
        let large = (threads / 2).max(1);
        Self {
            small: Lane::new(threads, queue),
            large: Lane::new(large, large),
        }
    }

    /// Whether the lane for a body of `body_bytes` bytes has a place free now.
    /// A handler asks before it reads a body, so that a flood of large bodies
    /// is shed for the price of its head, not of its 32 MiB; [`Self::run`]
    /// still decides once the body is in.
    #[must_use]
    pub fn has_room(&self, body_bytes: usize) -> bool {
        self.lane(body_bytes).admitted.available_permits() > 0
    }

    fn lane(&self, body_bytes: usize) -> &Lane {
        if body_bytes >= LARGE_JOB_BYTES {
            &self.large
        } else {
            &self.small
        }
    }

    /// Runs `job`, which validates a request body of `body_bytes` bytes, on
    /// the lane for its size, and returns its result.
    ///
    /// # Errors
    /// [`ApiError::Pushback`] when the lane's threads are busy and its queue
    /// is full; [`ApiError::Internal`] if the job panicked.
    pub async fn run<T, F>(&self, body_bytes: usize, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let lane = self.lane(body_bytes);
        let admitted = Arc::clone(&lane.admitted)
            .try_acquire_owned()
            .map_err(|_| ApiError::Pushback)?;
        let running = Arc::clone(&lane.running)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal("the validation pool is closed"))?;
        // The permits go with the job: a client that hangs up does not free
        // a thread that is still working for it.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            job()
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "a validation job panicked");
            ApiError::Internal("unexpected error validating the entry")
        })
    }

    /// Jobs running or waiting now, in both lanes.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.small.in_use() + self.large.in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_refuses_at_once_and_frees_its_place_when_done() {
        let pool = Arc::new(ValidationPool::new(1, 1));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let mut jobs = Vec::new();
        for _ in 0..2 {
            let (pool, wait) = (Arc::clone(&pool), Arc::clone(&wait));
            jobs.push(tokio::spawn(async move {
                pool.run(0, move || wait.lock().unwrap().recv().is_ok())
                    .await
            }));
        }
        while pool.in_use() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.run(0, || ()).await, Err(ApiError::Pushback)));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for job in jobs {
            assert!(job.await.unwrap().unwrap());
        }
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.run(0, || 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_not_a_crash() {
        let pool = ValidationPool::new(1, 0);
        let result = pool.run(0, || panic!("boom")).await;
        assert!(matches!(result, Err(ApiError::Internal(_))), "{result:?}");
        assert_eq!(pool.run(0, || 1).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn small_jobs_never_wait_behind_large_ones() {
        // One small thread; the large lane gets one thread and one place.
        let pool = Arc::new(ValidationPool::new(1, 0));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let mut large = Vec::new();
        for _ in 0..2 {
            let (pool, wait) = (Arc::clone(&pool), Arc::clone(&wait));
            large.push(tokio::spawn(async move {
                pool.run(LARGE_JOB_BYTES, move || wait.lock().unwrap().recv().is_ok())
                    .await
            }));
        }
        while pool.in_use() < 2 {
            tokio::task::yield_now().await;
        }
        // The large lane is full: one more large body is shed at once...
        assert!(!pool.has_room(32 << 20));
        assert!(matches!(
            pool.run(32 << 20, || ()).await,
            Err(ApiError::Pushback)
        ));
        // ...while a small one runs straight away on its own lane.
        assert!(pool.has_room(LARGE_JOB_BYTES - 1));
        assert_eq!(pool.run(LARGE_JOB_BYTES - 1, || 5).await.unwrap(), 5);
        release.send(()).unwrap();
        release.send(()).unwrap();
        for job in large {
            assert!(job.await.unwrap().unwrap());
        }
        assert_eq!(pool.in_use(), 0);
    }
}
