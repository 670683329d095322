//! Structured logs (JSON for machines or a readable single-line format for people, to stdout and
//! optionally to a size-rotated file) and Prometheus metrics ([`metrics`], [`process`]).

pub mod metrics;
pub mod process;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing::field::{Field, Visit};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::time::FormatTime;
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
    // one write, and pauses (see `Pausing`). Lossy: when the output cannot keep up, lines are
    // dropped rather than stalling requests.
    let (stdout, stdout_worker) =
        log_writer("log-stdout").finish(Pausing::new(std::io::BufWriter::new(std::io::stdout())));
    let mut layers = vec![format_layer(settings.log_format, stdout)];
    let mut guards = vec![stdout_worker];
    if let Some(path) = &settings.log_file {
        let file = rotating_file(path, settings.log_file_max_bytes, settings.log_file_max_files)?;
        let (writer, worker) = log_writer("log-file").finish(Pausing::new(file));
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

/// How long a log thread pauses after each flush before it looks for more lines.
const LOG_PAUSE: Duration = Duration::from_millis(10);

/// The writer behind a log thread: after each flush (which the thread makes once it has written
/// every line queued) it sleeps for [`LOG_PAUSE`]. Lines that arrive meanwhile wait in the
/// queue, and the thread takes them all at its next look, where otherwise each line or two
/// would wake it: during a read flood the thread woke about 6,000 times a second, each wake-up
/// a system call on a request thread and a switch on a busy core. A line reaches the output
/// at most that much later; the queue (8,192 lines) holds far more than arrive in a pause.
struct Pausing<W> {
    inner: W,
}

impl<W> Pausing<W> {
    fn new(inner: W) -> Self {
        Self { inner }
    }
}

impl<W: std::io::Write> std::io::Write for Pausing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.inner.flush();
        std::thread::sleep(LOG_PAUSE);
        flushed
    }
}

/// Log timestamps as `tracing-subscriber`'s default timer writes them (RFC 3339 in UTC, to the
/// microsecond), through chrono's formatter, which takes a third of the instructions.
struct UtcMicros;

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

/// Where json-subscriber's layer puts an event's fields unless told otherwise.
const EVENT_FIELDS_KEY: &str = "fields";

/// Writes each field of an event as a member of its JSON line: text and `Debug`/`Display`
/// values as strings, 64-bit numbers and booleans as themselves (128-bit ones as text, as
/// `tracing-serde` does).
struct TopLevelFields<'a, 'w>(&'a mut json_subscriber::FieldWriter<'w>);

impl TopLevelFields<'_, '_> {
    fn write(&mut self, field: &Field, value: impl serde::Serialize) {
        // Fails only for a value that cannot be JSON; the writer then leaves the line as it was.
        let _ = self.0.write_field(field.name(), value);
    }
}

impl Visit for TopLevelFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, value);
    }
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
        LogFormat::Json => {
            let mut layer = json_subscriber::fmt::layer()
                .with_current_span(true)
                .with_span_list(false)
                .with_timer(UtcMicros)
                .with_writer(writer);
            // The event's fields at the top level of the line, written as they are visited:
            // the crate's `flatten_event` builds a `serde_json::Value` map of them first.
            let json = layer.inner_layer_mut();
            json.remove_field(EVENT_FIELDS_KEY);
            json.add_multiple_dynamic_fields(|event, _, writer| event.record(&mut TopLevelFields(writer)));
            layer.boxed()
        }
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// A log writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The lines a layer writes for a request-shaped span and events of every kind of field.
    fn lines_of(layer: BoxedLayer, captured: &Captured) -> Vec<Value> {
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            {
                let span = tracing::info_span!("request", method = %"GET", route = "/users/{id}", user_id = tracing::field::Empty);
                let _entered = span.enter();
                span.record("user_id", 7_i64);
                tracing::info!(status = 200_u16, latency_us = 1_234_u64, "request completed");
                let error = io::Error::other("disk \"full\"");
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    delta = -3_i64,
                    big = u128::from(u64::MAX) + 1,
                    ratio = 0.25,
                    not_a_number = f64::NAN,
                    kept = true,
                    shown = %"line\nbreak",
                    debugged = ?Some("x"),
                    "went wrong: {}",
                    42
                );
            }
            tracing::info!("outside any span");
        });
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| {
                let mut entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                // The time itself differs from line to line; its shape must not.
                let at = entry.as_object_mut().and_then(|e| e.remove("timestamp"));
                let at = at.as_ref().and_then(Value::as_str).unwrap_or_default();
                assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{line}");
                let shape: String = at
                    .chars()
                    .map(|c| if c.is_ascii_digit() { '0' } else { c })
                    .collect();
                entry["timestamp shape"] = shape.into();
                entry
            })
            .collect()
    }

    #[test]
    fn json_lines_carry_event_fields_at_the_top_level_as_the_crates_flattening_does() {
        let ours = Captured::default();
        let theirs = Captured::default();
        let our_lines = lines_of(
            format_layer(LogFormat::Json, {
                let w = ours.clone();
                move || w.clone()
            }),
            &ours,
        );
        let reference = json_subscriber::fmt::layer()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer({
                let w = theirs.clone();
                move || w.clone()
            })
            .boxed();
        let their_lines = lines_of(reference, &theirs);

        assert_eq!(our_lines.len(), 3, "{our_lines:?}");
        assert_eq!(our_lines, their_lines);
        let completed = &our_lines[0];
        assert_eq!(completed["message"], "request completed");
        assert_eq!(completed["status"], 200);
        assert_eq!(completed["span"]["user_id"], 7);
        assert!(completed.get("fields").is_none(), "{completed}");
        let warning = &our_lines[1];
        assert_eq!(warning["message"], "went wrong: 42");
        assert_eq!(warning["error"], "disk \"full\"");
        assert_eq!(warning["big"], "18446744073709551616");
        assert_eq!(warning["not_a_number"], Value::Null);
        assert_eq!(warning["shown"], "line\nbreak");
        assert_eq!(warning["debugged"], "Some(\"x\")");
        assert_eq!(our_lines[2]["message"], "outside any span");
        assert!(our_lines[2].get("span").is_none());
    }

    /// The log thread pauses after each flush, not after each line: a burst of lines (fewer
    /// than the queue holds) is written within a few pauses, where a pause a line would take
    /// 50 s. Nothing is dropped.
    #[test]
    fn a_burst_of_lines_is_written_within_a_few_pauses() {
        let captured = Captured::default();
        let (writer, _guard) = log_writer("log-test").finish(Pausing::new(captured.clone()));
        let started = std::time::Instant::now();
        for i in 0..5_000 {
            io::Write::write_all(&mut writer.make_writer(), format!("line {i}\n").as_bytes()).unwrap();
        }
        let lines = || captured.0.lock().unwrap().iter().filter(|&&b| b == b'\n').count();
        while lines() < 5_000 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(LOG_PAUSE);
        }
        assert_eq!(lines(), 5_000);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
}
