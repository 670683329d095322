//! Structured logs (JSON for machines or a readable single-line format for people, to stdout and
//! optionally to a size-rotated file) and Prometheus metrics ([`metrics`], [`process`]).

pub mod metrics;
pub mod process;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::Context;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, Settings};

/// Keeps the log writers' background threads alive; dropping it flushes what is still queued.
/// Hold it until the process ends.
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    _workers: Vec<WorkerGuard>,
}

/// Installs the global subscriber: stdout always, plus `LOG_FILE` when set. `RUST_LOG` overrides
/// `LOG_LEVEL` when set. Calling it twice leaves the first subscriber in place.
pub fn init(settings: &Settings) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Both writers hand lines to a thread of their own, so a request never waits on a write.
    // That thread writes whatever is queued and then flushes, so under load many lines leave in
    // one write. Lossy: when the output cannot keep up, lines are dropped rather than stalling
    // requests.
    let (stdout, stdout_worker) = log_writer("log-stdout").finish(std::io::BufWriter::new(std::io::stdout()));
    let mut layers = vec![format_layer(settings.log_format, stdout)];
    let mut guards = vec![stdout_worker];
    if let Some(path) = &settings.log_file {
        let file = rotating_file(path, settings.log_file_max_bytes, settings.log_file_max_files)?;
        let (writer, worker) = log_writer("log-file").finish(file);
        layers.push(format_layer(settings.log_format, writer));
        guards.push(worker);
    }
    // The filter applies to the whole subscriber, not as a per-layer filter: with a per-layer
    // filter, a `log`-crate `enabled` query (sqlx makes them, e.g. for PostgreSQL notices)
    // leaves stale filter state behind and the next event is silently dropped
    // (tokio-rs/tracing#2519) — with `LOG_LEVEL=warn,users_api=info` that was the
    // "users-api listening" line.
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
    Ok(LogGuard { _workers: guards })
}

/// The queue in front of a log writer. Its slots are allocated up front, so it holds 8,192
/// lines (a fraction of a MiB) rather than the crate's default of 128,000 (3 MiB): enough for a
/// burst of several thousand requests while the writer catches up.
fn log_writer(name: &str) -> NonBlockingBuilder {
    NonBlockingBuilder::default()
        .buffered_lines_limit(8_192)
        .lossy(true)
        .thread_name(name)
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn format_layer<W>(format: LogFormat, writer: W) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        // json-subscriber writes the same shape as tracing-subscriber's JSON format, but keeps
        // each span's fields serialized once: tracing-subscriber parses them back from text for
        // every event and every recorded field, a fifth of a request's CPU at the ceiling.
        LogFormat::Json => json_subscriber::fmt::layer()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_span_events(FmtSpan::NONE)
            .with_writer(writer)
            .compact()
            .boxed(),
    }
}

/// A log file that is renamed to `FILE.1` (older ones shifting to `.2`, …) once a write takes it
/// past `max_bytes`; at most `max_files` rotated files are kept. Rotation happens after a whole
/// line, so no line is split across files.
fn rotating_file(path: &Path, max_bytes: u64, max_files: usize) -> anyhow::Result<FileRotate<AppendCount>> {
    // file-rotate panics when it cannot create the folder, so the folder and the file are
    // checked here first, where a failure can be reported.
    let path = absolute(path)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the LOG_FILE folder {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening LOG_FILE {}", path.display()))?;
    let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX).max(1);
    Ok(FileRotate::new(
        path,
        AppendCount::new(max_files),
        ContentLimit::BytesSurpassed(max_bytes),
        Compression::None,
        None,
    ))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let cwd = std::env::current_dir().context("reading the working directory for LOG_FILE")?;
    Ok(cwd.join(path))
}
