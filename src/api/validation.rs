//! The validation pool: entry validation (signature verification above all)
//! runs here, off the HTTP workers, so that one expensive request cannot stall
//! `/ping`, the probes or the reads (issue 12). With one CPU actix runs one
//! worker; validating on it would leave every other route waiting.
//!
//! At most `threads` jobs run at once, on tokio's blocking threads, and at
//! most `queue` more wait for a turn. Past that a request is refused at once
//! with [`ApiError::Pushback`] (503 with `Retry-After`), as the submission
//! pool refuses entries, instead of piling up work the server cannot finish.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::ApiError;

/// A bounded pool that runs CPU-bound validation off the HTTP workers.
#[derive(Debug)]
pub struct ValidationPool {
    /// One permit per job that may be admitted (running or waiting).
    admitted: Arc<Semaphore>,
    /// One permit per job that may run at once.
    running: Arc<Semaphore>,
    /// Jobs that may be admitted: `threads + queue`.
    size: usize,
}

impl ValidationPool {
    /// A pool that runs `threads` jobs at once and lets `queue` more wait.
    ///
    /// # Panics
    /// If `threads` is 0 (the config refuses it).
    #[must_use]
    pub fn new(threads: usize, queue: usize) -> Self {
        assert!(threads > 0, "a validation pool needs a thread");
        Self {
            admitted: Arc::new(Semaphore::new(threads + queue)),
            running: Arc::new(Semaphore::new(threads)),
            size: threads + queue,
        }
    }

    /// Runs `job` on the pool and returns its result.
    ///
    /// # Errors
    /// [`ApiError::Pushback`] when every thread is busy and the queue is full;
    /// [`ApiError::Internal`] if the job panicked.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| ApiError::Pushback)?;
        let running = Arc::clone(&self.running)
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

    /// Jobs running or waiting now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.size - self.admitted.available_permits()
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
                pool.run(move || wait.lock().unwrap().recv().is_ok()).await
            }));
        }
        while pool.in_use() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.run(|| ()).await, Err(ApiError::Pushback)));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for job in jobs {
            assert!(job.await.unwrap().unwrap());
        }
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_not_a_crash() {
        let pool = ValidationPool::new(1, 0);
        let result = pool.run(|| panic!("boom")).await;
        assert!(matches!(result, Err(ApiError::Internal(_))), "{result:?}");
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
    }
}
