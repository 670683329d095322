//! Argon2id password hashing, kept off the async executor.
//!
//! Hashing takes tens of milliseconds of pure CPU and 19 MiB of memory. Hashes run on a small
//! pool of dedicated threads, one per core by default, whose size bounds how many run at once
//! (and so CPU and memory): a login flood queues here instead of starving the threads that serve
//! every other request. Each hash's block goes back to the system when it is freed; see
//! [`tune_allocator`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

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
        let dummy = timed(|| hash_with(&mut Scratch::default(), &random))
            .context("computing the dummy password hash")?;
        Ok(Self {
            pool: Arc::new(HashPool::start(concurrency.max(1))?),
            dummy_hash: dummy.into(),
        })
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        self.run(move |scratch| hash_with(scratch, password.expose().as_bytes()))
            .await?
    }

    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        Ok(self.check(password, stored).await? != Verified::No)
    }

    /// Like [`verify`](Self::verify), also telling whether a matching hash should be replaced
    /// (a legacy format, or Argon2 with other parameters than ours).
    pub async fn check(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<Verified> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.clone();
        let verified = self
            .run(move |scratch| verify_any(scratch, password.expose(), &hash))
            .await?;
        Ok(if known { verified } else { Verified::No })
    }

    /// Times `n` hashes run back to back on one hashing thread, in memory kept from one to
    /// the next as a login flood runs them; microseconds each. With `every_thread`, every
    /// hashing thread does so at the same time, as in a flood that keeps them all busy, and
    /// the answer holds all their timings. For `bench/run.sh` only (not recorded in the
    /// hash-duration metric).
    #[cfg(feature = "bench")]
    pub async fn time_back_to_back(&self, n: u32, every_thread: bool) -> anyhow::Result<Vec<u64>> {
        let threads = if every_thread { self.pool.threads } else { 1 };
        let timings = self
            .on_threads(threads, move |scratch| {
                (0..n)
                    .map(|_| {
                        let started = Instant::now();
                        hash_with(scratch, b"bench-password-123")?;
                        Ok(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
                    })
                    .collect::<anyhow::Result<Vec<u64>>>()
            })
            .await?;
        Ok(timings.into_iter().flatten().collect())
    }

    /// Hashes back to back on every hashing thread at once until `window` has passed on each;
    /// answers each thread's hashes and the microseconds they took. Over a window of seconds
    /// this averages a machine whose speed changes from moment to moment. For `bench/run.sh`
    /// only.
    #[cfg(feature = "bench")]
    pub async fn hash_for(&self, window: std::time::Duration) -> anyhow::Result<Vec<(u32, u64)>> {
        self.on_threads(self.pool.threads, move |scratch| {
            let started = Instant::now();
            let mut hashes = 0u32;
            loop {
                hash_with(scratch, b"bench-password-123")?;
                hashes += 1;
                let elapsed = started.elapsed();
                if elapsed >= window {
                    return Ok((hashes, u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)));
                }
            }
        })
        .await
    }

    /// Runs `job` once on each of `threads` hashing threads at the same time and answers what
    /// each returned. All jobs are queued before any is awaited, so that each idle thread
    /// takes one.
    #[cfg(feature = "bench")]
    async fn on_threads<T: Send + 'static>(
        &self,
        threads: usize,
        job: impl Fn(&mut Scratch) -> anyhow::Result<T> + Clone + Send + 'static,
    ) -> anyhow::Result<Vec<T>> {
        let mut answers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (reply, answer) = oneshot::channel();
            let job = job.clone();
            self.pool.submit(Box::new(move |scratch: &mut Scratch| {
                let _ = reply.send(job(scratch));
            }))?;
            answers.push(answer);
        }
        let mut results = Vec::with_capacity(threads);
        for answer in answers {
            results.push(answer.await.context("password hashing task failed")??);
        }
        Ok(results)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = oneshot::channel();
        self.pool.submit(Box::new(move |scratch: &mut Scratch| {
            // The caller may have gone (request timeout); then nobody wants the result.
            let _ = reply.send(timed(|| work(scratch)));
        }))?;
        answer.await.context("password hashing task failed")
    }
}

type Job = Box<dyn FnOnce(&mut Scratch) + Send + 'static>;

/// A fixed set of threads that run hashing jobs in arrival order. The threads end
/// when the last [`PasswordHasher`] clone is dropped (the channel closes).
struct HashPool {
    jobs: crossbeam_channel::Sender<Job>,
    #[cfg(feature = "bench")]
    threads: usize,
}

impl HashPool {
    fn start(threads: usize) -> anyhow::Result<Self> {
        // Many senders, several receivers: each job goes to one idle thread.
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for index in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    let mut scratch = Scratch::default();
                    loop {
                        let job = match queue.try_recv() {
                            Ok(job) => job,
                            Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                            Err(crossbeam_channel::TryRecvError::Empty) => {
                                // Nothing queued: the memory goes back before the thread sleeps.
                                scratch = Scratch::default();
                                let Ok(job) = queue.recv() else { return };
                                job
                            }
                        };
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch)));
                    }
                })
                .context("starting a password hashing thread")?;
        }
        Ok(Self {
            jobs,
            #[cfg(feature = "bench")]
            threads,
        })
    }

    fn submit(&self, job: Job) -> anyhow::Result<()> {
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("password hasher closed"))
    }
}

/// Makes glibc return Argon2's 19 MiB blocks to the system when they are freed. The blocks are
/// 64-byte aligned, so they come from `posix_memalign`; with glibc's default, self-adjusting
/// mmap threshold the first freed block raises the threshold, later blocks come from the heap,
/// and the alignment padding fragments it so that a freed block is never reused: resident
/// memory grew by one block per hash, past 500 MiB under a login flood. A fixed threshold keeps
/// every allocation of 1 MiB or more in its own mapping, unmapped on free. The cost, faulting in
/// fresh pages, is paid once per burst of hashes: a hashing thread keeps its memory while hashes
/// are queued ([`Scratch`]). Call once, early in `main`; elsewhere than glibc it does nothing.
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

/// Argon2 working memory (19 MiB at the configured parameters) that a hashing thread keeps
/// from one hash to the next while hashes are queued, as in a login flood: mapping it, faulting
/// it in page by page and unmapping it again cost about a quarter of each hash, and two threads
/// doing so at once contend in the kernel. The thread drops it as soon as its queue is empty, so
/// an idle service holds none (decision 63 still holds at rest).
#[derive(Default)]
pub struct Scratch(Vec<Block>);

impl Scratch {
    /// Memory for `count` blocks. Only the configured parameters' size is kept; a stored hash
    /// with a larger memory cost (an imported one) gets memory of its own for that one hash.
    fn with_blocks<T>(&mut self, count: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        if count > Params::DEFAULT_M_COST as usize {
            return work(&mut zeroed_blocks(count));
        }
        if self.0.len() < count {
            self.0 = zeroed_blocks(count);
        }
        work(&mut self.0[..count])
    }
}

/// `count` zeroed Argon2 blocks, in memory the kernel is asked to back with 2 MiB pages before
/// it is first touched. Argon2 reads blocks all over its 19 MiB; with 4 KiB pages nearly every
/// read needs an address translation that is not cached, and those page-table walks compete for
/// the cache that two concurrent hashes already share. Where transparent huge pages are off, or
/// none is free, the kernel uses ordinary pages and nothing else changes.
fn zeroed_blocks(count: usize) -> Vec<Block> {
    let mut blocks = Vec::with_capacity(count);
    advise_huge_pages(blocks.spare_capacity_mut());
    blocks.resize(count, Block::default());
    blocks
}

/// Asks for huge pages for the whole 2 MiB-aligned stretches of `memory`.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(memory: &mut [std::mem::MaybeUninit<T>]) {
    const HUGE_PAGE: usize = 2 << 20;
    let start = memory.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(memory);
    let (from, to) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
    if from < to {
        // SAFETY: the range lies inside memory this caller owns exclusively. MADV_HUGEPAGE
        // changes only how the kernel backs it, never its contents; a refusal (THP built out of
        // the kernel) leaves ordinary pages, so the result is not needed.
        unsafe {
            let _ = libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_memory: &mut [std::mem::MaybeUninit<T>]) {}

/// A new Argon2id hash of `password` at the configured parameters, as a PHC string: what
/// `argon2::PasswordHasher::hash_password` gives, computed in `scratch`.
fn hash_with(scratch: &mut Scratch, password: &[u8]) -> anyhow::Result<String> {
    let hasher = argon2();
    let salt: [u8; Salt::RECOMMENDED_LENGTH] = rand::random();
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    scratch
        .with_blocks(hasher.params().block_count(), |blocks| {
            hasher.hash_password_into_with_memory(password, &salt, &mut output, blocks)
        })
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = |e: &dyn std::fmt::Display| anyhow::anyhow!("argon2: {e}");
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(hasher.params()).map_err(|e| phc(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| phc(&e))?),
        hash: Some(Output::new(&output).map_err(|e| phc(&e))?),
    }
    .to_string())
}

/// Whether `password` matches a parsed Argon2 hash (any variant, version and parameters), as
/// `argon2::PasswordVerifier::verify_password` decides it, computed in `scratch`.
fn verify_with(scratch: &mut Scratch, password: &[u8], hash: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        Params::try_from(hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let hasher = Argon2::new(algorithm, version, params);
    let mut output = vec![0u8; expected.len()];
    let computed = scratch.with_blocks(hasher.params().block_count(), |blocks| {
        hasher.hash_password_into_with_memory(password, salt, &mut output, blocks)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&output).is_ok_and(|output| &output == expected)
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
fn verify_any(scratch: &mut Scratch, password: &str, hash: &str) -> Verified {
    if let Ok(parsed) = PasswordHash::new(hash)
        && parsed.algorithm.as_str().starts_with("argon2")
    {
        if !verify_with(scratch, password.as_bytes(), &parsed) {
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

    #[test]
    fn hashes_made_in_reused_memory_are_the_crates_hashes() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut scratch = Scratch::default();
        // One scratch for several hashes, as in a login flood: each result must verify with the
        // crate's own verifier (fresh memory), and the crate's hashes with ours.
        for password in ["first password 1", "second password 2", "first password 1"] {
            let ours = hash_with(&mut scratch, password.as_bytes()).unwrap();
            assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(argon2().verify_password(password.as_bytes(), &parsed).is_ok());
            assert!(argon2().verify_password(b"other", &parsed).is_err());
            let theirs = argon2().hash_password(password.as_bytes()).unwrap();
            assert!(verify_with(&mut scratch, password.as_bytes(), &theirs));
            assert!(!verify_with(&mut scratch, b"other", &theirs));
        }
        assert_eq!(
            scratch.0.len(),
            Params::DEFAULT_M_COST as usize,
            "kept for the next hash"
        );
    }

    #[test]
    fn other_argon2_variants_and_larger_costs_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let mut scratch = Scratch::default();
        let params = Params::new(2 * Params::DEFAULT_M_COST, 1, 2, None).unwrap();
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d, Algorithm::Argon2id] {
            let hasher = Argon2::new(algorithm, Version::V0x10, params.clone());
            let stored = hasher.hash_password(b"imported secret").unwrap();
            assert!(verify_with(&mut scratch, b"imported secret", &stored), "{stored}");
            assert!(
                !verify_with(&mut scratch, b"imported secreT", &stored),
                "{stored}"
            );
        }
        // The larger memory was lent for those hashes only.
        assert!(scratch.0.is_empty());
    }

    /// Where the kernel offers transparent huge pages (`always` or `madvise`), hashing memory is
    /// advised for them (`MADV_HUGEPAGE`): /proc/self/smaps flags its mappings `hg`. Whether the
    /// kernel then backs a fault with a huge page is its own choice (memory that glibc hands
    /// back from an arena another test thread touched keeps its small pages), so the advice is
    /// what is checked.
    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_memory_is_advised_for_huge_pages_where_the_kernel_offers_them() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !(thp.contains("[always]") || thp.contains("[madvise]")) {
            return;
        }
        tune_allocator();
        let blocks = zeroed_blocks(Params::DEFAULT_M_COST as usize);
        let start = blocks.as_ptr() as usize;
        let memory = start..start + std::mem::size_of_val(blocks.as_slice());
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // Advising part of a mapping splits it: add up the advised mappings inside the blocks.
        // Each mapping is a header line with its address range, then its fields.
        let mut advised = 0;
        let mut inside = 0..0;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (usize::from_str_radix(from, 16), usize::from_str_radix(to, 16))
            {
                inside = from.max(memory.start)..to.min(memory.end);
            } else if let Some(flags) = line.strip_prefix("VmFlags:")
                && flags.split_whitespace().any(|flag| flag == "hg")
            {
                advised += inside.end.saturating_sub(inside.start);
            }
        }
        // 19 MiB wherever it starts holds at least eight whole 2 MiB-aligned stretches.
        assert!(advised >= 8 * (2 << 20), "{advised} bytes advised ({thp})");
        drop(blocks);
    }

    #[tokio::test]
    async fn unknown_users_and_garbage_hashes_never_match() {
        let hasher = PasswordHasher::new(1).unwrap();
        let pw = SecretString::new("whatever123");
        assert!(!hasher.verify(&pw, None).await.unwrap());
        assert!(!hasher.verify(&pw, Some("not a hash".into())).await.unwrap());
    }
}
