//! Argon2id password hashing, kept off the async executor.
//!
//! Hashing takes tens of milliseconds of pure CPU and 19 MiB of memory. Hashes run on a small
//! pool of dedicated threads, one per core by default, whose size bounds how many run at once
//! (and so CPU and memory): a login flood queues here instead of starving the threads that serve
//! every other request. Each hash's block goes back to the system when it is freed; see
//! [`tune_allocator`].

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

use super::legacy;
use tokio::sync::oneshot;

use crate::domain::SecretString;
use crate::telemetry::metrics::PASSWORD_HASH_DURATION;

/// OWASP's recommended Argon2id parameters: 19 MiB of memory, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

#[derive(Clone)]
pub struct PasswordHasher {
    pool: Arc<HashPool>,
    /// A real hash of a random password, verified against when the user does not exist so that
    /// an unknown login costs the same time as a known one.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `concurrency` is how many hashes may run at once (normally the number of cores).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let random: [u8; 16] = rand::random();
        let dummy = timed(|| argon2().hash_password(&random))
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
            .context("computing the dummy password hash")?
            .to_string();
        Ok(Self {
            pool: Arc::new(HashPool::start(concurrency.max(1))?),
            dummy_hash: dummy.into(),
        })
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        self.run(move || {
            argon2()
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await?
    }

    /// Checks `password` against `stored`; with `None` (no such user) it verifies against the
    /// dummy hash and answers `false`, taking the same time.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        Ok(self.check(password, stored).await? != Verified::No)
    }

    /// Like [`verify`](Self::verify), also telling whether a matching hash should be replaced
    /// (a legacy format, or Argon2 with other parameters than ours).
    pub async fn check(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<Verified> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.clone();
        let verified = self.run(move || verify_any(password.expose(), &hash)).await?;
        Ok(if known { verified } else { Verified::No })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (reply, answer) = oneshot::channel();
        self.pool.submit(Box::new(move || {
            // The caller may have gone (request timeout); then nobody wants the result.
            let _ = reply.send(timed(work));
        }))?;
        answer.await.context("password hashing task failed")
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads that run hashing jobs in arrival order. The threads end
/// when the last [`PasswordHasher`] clone is dropped (the channel closes).
struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    fn start(threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, not while hashing.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking job drops its reply (the request fails); the thread stays.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .context("starting a password hashing thread")?;
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    fn submit(&self, job: Job) -> anyhow::Result<()> {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| anyhow::anyhow!("password hasher poisoned"))?;
        jobs.send(job)
            .map_err(|_| anyhow::anyhow!("password hasher closed"))
    }
}

/// Makes glibc return Argon2's 19 MiB blocks to the system when they are freed. The blocks are
/// 64-byte aligned, so they come from `posix_memalign`; with glibc's default, self-adjusting
/// mmap threshold the first freed block raises the threshold, later blocks come from the heap,
/// and the alignment padding fragments it so that a freed block is never reused: resident
/// memory grew by one block per hash, past 500 MiB under a login flood. A fixed threshold keeps
/// every allocation of 1 MiB or more in its own mapping, unmapped on free. The cost, faulting in
/// fresh pages for each hash, was paid anyway while the heap kept growing. Call once, early in
/// `main`; elsewhere than glibc it does nothing.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc tunable, under glibc's own lock.
    unsafe {
        let _ = libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Runs one hash or verification and records its duration. Only the computation is timed, not
/// the wait for a permit: queueing shows in the request latency, and this histogram tells
/// whether the Argon2 parameters suit the hardware.
fn timed<T>(work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = work();
    let elapsed = started.elapsed();
    metrics::histogram!(PASSWORD_HASH_DURATION).record(elapsed.as_secs_f64());
    tracing::trace!(elapsed_ms = elapsed.as_millis() as u64, "password hash");
    out
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// It matched, and the stored hash should be replaced by a fresh Argon2id one.
    YesRehash,
}

/// Verifies a stored hash of any supported format. An unparsable hash never matches.
fn verify_any(password: &str, hash: &str) -> Verified {
    if let Ok(parsed) = PasswordHash::new(hash)
        && parsed.algorithm.as_str().starts_with("argon2")
    {
        if argon2().verify_password(password.as_bytes(), &parsed).is_err() {
            return Verified::No;
        }
        let ours = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                (p.m_cost(), p.t_cost(), p.p_cost())
                    == (
                        Params::DEFAULT_M_COST,
                        Params::DEFAULT_T_COST,
                        Params::DEFAULT_P_COST,
                    )
            });
        return if ours { Verified::Yes } else { Verified::YesRehash };
    }
    if legacy::verify(password, hash) {
        Verified::YesRehash
    } else {
        Verified::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_argon2id() {
        let hasher = PasswordHasher::new(2).unwrap();
        let pw = SecretString::new("correct horse battery");
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&pw, Some(hash.clone())).await.unwrap());
        let wrong = SecretString::new("wrong horse battery");
        assert!(!hasher.verify(&wrong, Some(hash.clone())).await.unwrap());
        // Two hashes of one password differ (random salt).
        assert_ne!(hash, hasher.hash(&pw).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_users_and_garbage_hashes_never_match() {
        let hasher = PasswordHasher::new(1).unwrap();
        let pw = SecretString::new("whatever123");
        assert!(!hasher.verify(&pw, None).await.unwrap());
        assert!(!hasher.verify(&pw, Some("not a hash".into())).await.unwrap());
    }
}
