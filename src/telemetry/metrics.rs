//! The Prometheus recorder and the names of every metric the service exports.
//!
//! The `metrics` facade allows one global recorder per process, while tests build many
//! applications in one process: [`install`] builds and installs the recorder once and every
//! application renders through the same handle. Counters are therefore process-wide.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const USERS_REGISTERED: &str = "users_registered_total";
pub const LOGINS: &str = "logins_total";
pub const TOKEN_REFRESH: &str = "token_refresh_total";
pub const PASSWORD_HASH_DURATION: &str = "password_hash_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
pub const PIPELINED_LOOKUPS: &str = "pipelined_lookups_total";

/// `logins_total{result}` values.
pub const LOGIN_RESULTS: [&str; 4] = ["success", "failure", "inactive", "throttled"];
/// `token_refresh_total{result}` values.
pub const REFRESH_RESULTS: [&str; 2] = ["success", "failure"];
/// `pipelined_lookups_total{lookup}` values, in `store::pg_direct`'s order.
pub const PIPELINED_LOOKUP_KINDS: [&str; 3] = ["session", "user", "login"];
/// `pipelined_lookups_total{answer}` values: served from what was kept after an epoch check, or
/// read from the tables (`store::pg_direct`), in that order.
pub const PIPELINED_ANSWERS: [&str; 2] = ["kept", "read"];

/// Request latency buckets, seconds: Prometheus' defaults, which include the 0.5 s the
/// latency alert uses.
const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Argon2id takes tens of milliseconds; the buckets resolve that range and its queueing tail.
const HASH_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5];

/// How often histogram samples are folded into their buckets when nobody scrapes, so memory
/// stays bounded between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process-wide `metrics` recorder, once, and returns
/// the handle that renders it; `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(build).as_ref()
}

/// The installed handle, if [`install`] has run and succeeded.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get().and_then(Option::as_ref)
}

fn build() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), HTTP_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(PASSWORD_HASH_DURATION.into()), HASH_BUCKETS));
    let builder = match builder {
        Ok(builder) => builder,
        Err(err) => {
            tracing::error!(error = %err, "invalid metric buckets; metrics are disabled");
            return None;
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(err) = metrics::set_global_recorder(recorder) {
        tracing::error!(error = %err, "another metrics recorder is installed; /metrics will be empty");
        return None;
    }
    describe();
    // Counters exist from the start at zero, so rate() and the dashboards see every series
    // before the first event.
    counter!(USERS_REGISTERED).increment(0);
    for result in LOGIN_RESULTS {
        counter!(LOGINS, "result" => result).increment(0);
    }
    for result in REFRESH_RESULTS {
        counter!(TOKEN_REFRESH, "result" => result).increment(0);
    }
    for lookup in PIPELINED_LOOKUP_KINDS {
        for answer in PIPELINED_ANSWERS {
            counter!(PIPELINED_LOOKUPS, "lookup" => lookup, "answer" => answer).increment(0);
        }
    }
    let upkeep = handle.clone();
    // A plain thread, not a task: tests run each application on its own short-lived runtime,
    // and the recorder outlives them all.
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        // Rendering does the same work, so scrapes alone still keep memory bounded.
        tracing::warn!(error = %err, "could not start the metrics upkeep thread");
    }
    Some(handle)
}

fn describe() {
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request latency by method, route template and status"
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by method, route template and status"
    );
    describe_counter!(
        USERS_REGISTERED,
        "Accounts created (registration or by an administrator)"
    );
    describe_counter!(LOGINS, "Login attempts by result");
    describe_counter!(TOKEN_REFRESH, "Refresh token exchanges by result");
    describe_histogram!(
        PASSWORD_HASH_DURATION,
        Unit::Seconds,
        "Time spent computing one password hash or verification"
    );
    describe_counter!(
        PIPELINED_LOOKUPS,
        "PostgreSQL pipelined lookups answered, by lookup and by whether a kept answer served"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections by state (idle, in_use, max), sampled at each scrape"
    );
}
