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
//!   many wait as it runs, on threads of its own at the lowest scheduling
//!   priority (nice 19, on Linux): while small jobs want the cores, large
//!   ones get only what is left, so a flood of large bodies cannot take the
//!   CPU from honest creates. A large body takes its place before it is
//!   read ([`ValidationPool::admit`]), so no more of them are in memory at
//!   once than the lane can take, and the rest are refused on their head.
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

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::byte_budget::ByteBudget;
use super::ApiError;

/// Request bodies of at least this many bytes are validated in the large lane.
pub const LARGE_JOB_BYTES: usize = 64 << 10;

/// The name of the large lane's threads (at most 15 bytes, Linux's limit).
pub const LARGE_LANE_THREAD: &str = "tlog-large-lane";

/// The name of the small lane's threads.
pub const SMALL_LANE_THREAD: &str = "tlog-validate";

/// The nice value of the large lane's threads on Linux: the lowest priority,
/// so that while small jobs want the cores, large ones get what is left.
pub const LARGE_LANE_NICE: i32 = 19;

/// A bounded pool that runs CPU-bound validation off the HTTP workers.
#[derive(Debug)]
pub struct ValidationPool {
    small: Lane,
    /// Its threads run at the lowest priority.
    large: Lane,
    /// Large-body bytes admitted per second, when limited.
    large_bytes: Option<ByteBudget>,
}

/// One first-come, first-served lane of the pool: its own threads, taking
/// jobs in order from one queue.
#[derive(Debug)]
struct Lane {
    /// One permit per job that may be admitted (running or waiting).
    admitted: Arc<Semaphore>,
    /// Jobs that may be admitted: threads + queue.
    size: usize,
    threads: WorkerThreads,
}

impl Lane {
    fn new(threads: usize, queue: usize, name: &str, nice: Option<i32>) -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(threads + queue)),
            size: threads + queue,
            threads: WorkerThreads::start(threads, name, nice),
        }
    }

    fn in_use(&self) -> usize {
        self.size - self.admitted.available_permits()
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| ApiError::Pushback)
    }
}

/// A place in the pool, taken before a request's body is read.
///
/// A large body holds its place in the large lane while it arrives, so no
/// more large bodies are read at once than the lane can take: the rest are
/// refused for the price of their head. A small body takes its place only
/// once it is in, so that clients trickling small bodies cannot hold the
/// small lane's places (the body timeout ends them; reading 64 KiB is cheap).
#[derive(Debug)]
#[must_use = "a ticket holds a place in the pool until it is run or dropped"]
pub struct Ticket {
    /// The large lane's place, when the body was announced as large.
    large: Option<OwnedSemaphorePermit>,
}

impl ValidationPool {
    /// A pool whose small lane runs `threads` jobs at once and lets `queue`
    /// more wait; its large lane runs `max(1, threads / 2)` and lets as many wait.
    ///
    /// # Panics
    /// If `threads` is 0 (the config refuses it), or the large lane's
    /// threads cannot be started.
    #[must_use]
    pub fn new(threads: usize, queue: usize) -> Self {
        assert!(threads > 0, "a validation pool needs a thread");
        let large = (threads / 2).max(1);
        Self {
            small: Lane::new(threads, queue, SMALL_LANE_THREAD, None),
            large: Lane::new(large, large, LARGE_LANE_THREAD, Some(LARGE_LANE_NICE)),
            large_bytes: None,
        }
    }

    /// Limits the large bodies admitted to about `bytes_per_second` bytes a
    /// second (0: no limit). Reading a body costs the HTTP workers a copy of
    /// every byte at full priority before the large lane sees it, so without
    /// a budget 8 connections sending 32 MiB bodies in a loop keep the cores
    /// busy copying even when every one of them is refused once read.
    #[must_use]
    pub fn with_large_bytes_per_second(mut self, bytes_per_second: u64) -> Self {
        self.large_bytes = (bytes_per_second > 0).then(|| ByteBudget::new(bytes_per_second));
        self
    }

    /// Charges `bytes` of a large body whose length was not announced, once
    /// it is in (a body with a `Content-Length` is charged when admitted).
    pub fn charge_large_bytes(&self, bytes: usize) {
        if let Some(budget) = &self.large_bytes {
            budget.charge(bytes);
        }
    }

    /// Takes a place for a request whose body is announced as `declared`
    /// bytes (`None`: not announced, so it may be large), before the body
    /// is read. [`Self::run_admitted`] then runs its job.
    ///
    /// # Errors
    /// [`ApiError::Pushback`] when the body's lane is full.
    pub fn admit(&self, declared: Option<usize>) -> Result<Ticket, ApiError> {
        match declared {
            Some(n) if n < LARGE_JOB_BYTES => {
                if self.small.admitted.available_permits() == 0 {
                    return Err(ApiError::Pushback);
                }
                Ok(Ticket { large: None })
            }
            _ => {
                // The place first: a body refused for want of one must not
                // spend the budget.
                let place = self.large.admit()?;
                if let Some(budget) = &self.large_bytes {
                    if !budget.admit(declared.unwrap_or(0)) {
                        return Err(ApiError::Pushback);
                    }
                }
                Ok(Ticket { large: Some(place) })
            }
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
        let ticket = Ticket {
            large: if body_bytes >= LARGE_JOB_BYTES {
                Some(self.large.admit()?)
            } else {
                None
            },
        };
        self.run_admitted(ticket, job).await
    }

    /// Runs `job` in the place `ticket` holds: the large lane's threads for
    /// a body announced as large, else the small lane (admitted now).
    ///
    /// # Errors
    /// As [`Self::run`].
    pub async fn run_admitted<T, F>(&self, ticket: Ticket, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // The place goes with the job: a client that hangs up does not free
        // a place whose thread is still working for it.
        let (lane, admitted) = match ticket.large {
            Some(admitted) => (&self.large, admitted),
            None => (&self.small, self.small.admit()?),
        };
        lane.threads
            .run(move || {
                let _admitted = admitted;
                job()
            })
            .await
            .map_err(|()| {
                tracing::error!("a validation job panicked");
                ApiError::Internal("unexpected error validating the entry")
            })
    }

    /// Jobs running or waiting now, in both lanes, with the large bodies
    /// still being read.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.small.in_use() + self.large.in_use()
    }

    /// [`Self::in_use`] by lane: `(small, large)`.
    #[must_use]
    pub fn in_use_by_lane(&self) -> (usize, usize) {
        (self.small.in_use(), self.large.in_use())
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that take jobs in order from one queue.
///
/// Not tokio's blocking pool: a job there costs a thread wake-up after the
/// permit round trip, three context switches a create in all, about a third
/// more CPU per hashedrekord than validating on the HTTP worker. Here a
/// thread that finishes a job takes the next one queued without sleeping,
/// so under load the hand-off costs little more than a queue operation.
/// And a thread's priority can be lowered but, without `CAP_SYS_NICE`,
/// never raised again, so the large lane needs threads of its own anyway.
#[derive(Debug)]
struct WorkerThreads {
    jobs: flume::Sender<Job>,
}

impl WorkerThreads {
    fn start(threads: usize, name: &str, nice: Option<i32>) -> Self {
        // Unbounded: the lane's semaphore bounds what is queued.
        let (jobs, queue) = flume::unbounded::<Job>();
        for _ in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    if let Some(nice) = nice {
                        lower_this_threads_priority(nice);
                    }
                    // Ends when the pool, and so the sender, is dropped.
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                })
                .expect("start a validation thread");
        }
        Self { jobs }
    }

    /// Runs `job` on one of the threads; `Err` if it panicked.
    async fn run<T, F>(&self, job: F) -> Result<T, ()>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            let _ = done.send(outcome);
        });
        self.jobs.send(job).map_err(|_| ())?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            _ => Err(()),
        }
    }
}

/// Sets the calling thread's nice value. On Linux, `setpriority` on a
/// thread ID applies to that thread alone; elsewhere it would apply to the
/// whole process, so other systems keep the default.
fn lower_this_threads_priority(nice: i32) {
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(error = %err, "couldn't lower a validation lane's priority");
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
        // The large lane is full: one more large body is shed at once, and
        // so is one of unknown length...
        assert!(matches!(
            pool.admit(Some(32 << 20)),
            Err(ApiError::Pushback)
        ));
        assert!(matches!(pool.admit(None), Err(ApiError::Pushback)));
        assert!(matches!(
            pool.run(32 << 20, || ()).await,
            Err(ApiError::Pushback)
        ));
        // ...while a small one runs straight away on its own lane.
        let ticket = pool.admit(Some(LARGE_JOB_BYTES - 1)).unwrap();
        assert_eq!(pool.run_admitted(ticket, || 5).await.unwrap(), 5);
        release.send(()).unwrap();
        release.send(()).unwrap();
        for job in large {
            assert!(job.await.unwrap().unwrap());
        }
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn a_large_body_holds_its_place_while_it_is_read() {
        // The large lane has one thread and one place to wait.
        let pool = ValidationPool::new(1, 0);
        let first = pool.admit(Some(10 << 20)).unwrap();
        let second = pool.admit(None).unwrap();
        assert_eq!(pool.in_use(), 2, "bodies still arriving count");
        assert!(matches!(
            pool.admit(Some(10 << 20)),
            Err(ApiError::Pushback)
        ));
        // Small bodies take their place only once they are in.
        let small: Vec<_> = (0..4).map(|_| pool.admit(Some(100)).unwrap()).collect();
        assert_eq!(pool.in_use(), 2);
        drop(small);
        drop(first);
        assert_eq!(pool.run_admitted(second, || 3).await.unwrap(), 3);
        assert_eq!(pool.in_use(), 0);
        assert!(pool.admit(Some(10 << 20)).is_ok());
    }

    #[tokio::test]
    async fn a_panicking_large_job_leaves_its_thread_working() {
        let pool = ValidationPool::new(1, 0);
        let result = pool.run(LARGE_JOB_BYTES, || panic!("boom")).await;
        assert!(matches!(result, Err(ApiError::Internal(_))), "{result:?}");
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.run(LARGE_JOB_BYTES, || 2).await.unwrap(), 2);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn large_jobs_run_at_the_lowest_priority_and_small_ones_do_not() {
        /// The calling thread's nice value, from `/proc` (field 19 of `stat`).
        fn nice() -> i32 {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            after_name.split(' ').nth(16).unwrap().parse().unwrap()
        }
        let pool = ValidationPool::new(2, 0);
        let (large, name) = pool
            .run(LARGE_JOB_BYTES, || {
                (nice(), std::thread::current().name().map(str::to_owned))
            })
            .await
            .unwrap();
        assert_eq!(large, LARGE_LANE_NICE);
        assert_eq!(name.as_deref(), Some(LARGE_LANE_THREAD));
        assert_eq!(pool.run(0, nice).await.unwrap(), nice());
    }

    #[tokio::test]
    async fn large_bodies_are_admitted_within_their_byte_budget() {
        let pool = ValidationPool::new(4, 0).with_large_bytes_per_second(1 << 20);
        // A body larger than a second's worth still gets in when the
        // budget is full...
        drop(pool.admit(Some(3 << 20)).unwrap());
        // ...and then the budget is spent: the next large body is refused,
        // announced or not, while small ones are not charged at all.
        assert!(matches!(
            pool.admit(Some(LARGE_JOB_BYTES)),
            Err(ApiError::Pushback)
        ));
        assert!(matches!(pool.admit(None), Err(ApiError::Pushback)));
        assert!(pool.admit(Some(LARGE_JOB_BYTES - 1)).is_ok());
        // An unlimited pool admits as many as its places allow.
        let pool = ValidationPool::new(4, 0);
        drop(pool.admit(Some(3 << 20)).unwrap());
        assert!(pool.admit(Some(3 << 20)).is_ok());
    }
}
