//! Operations: `/metrics` (names, labels, domain counters, the token), the names the shipped
//! dashboards and alerts query, graceful shutdown of the real binary, and the log file.
//!
//! The metrics recorder is one per process and every test here shares it, so counters are
//! compared before and after, and only ever expected to have grown by at least as much as this
//! test caused (other tests run at the same time).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{Scratch, Server, serve};
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app, spawn_app_with};

/// One sample line of the text exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` page.
pub(crate) struct Exposition {
    text: String,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: String) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                let value = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                    None => (series, BTreeMap::new()),
                };
                Sample {
                    name: name.to_owned(),
                    labels,
                    value,
                }
            })
            .collect();
        Self { text, samples }
    }

    /// The sum over the series of `name` whose labels include `labels`.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.iter().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
    }

    fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }

    fn label_values(&self, label: &str) -> BTreeSet<&str> {
        self.samples
            .iter()
            .filter_map(|s| s.labels.get(label).map(String::as_str))
            .collect()
    }
}

/// `a="x",b="y \"q\""` → {a: x, b: y "q"}
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

pub(crate) async fn scrape(app: &TestApp) -> Exposition {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Exposition::parse(response.text().await.unwrap())
}

backend_test!(
    async fn metrics_label_requests_by_route_template_never_by_raw_url(app) {
        let admin = app.admin().await;
        assert_eq!(app.get("/users/123", Some(&admin.token)).await.status(), StatusCode::NOT_FOUND);
        let own = format!("/users/{}", admin.id);
        assert_eq!(app.get(&own, Some(&admin.token)).await.status(), StatusCode::OK);
        assert_eq!(app.get("/no/such/url/xyz", None).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get("/users/", Some(&admin.token)).await.status(), StatusCode::OK);

        let metrics = scrape(&app).await;
        let route = [("method", "GET"), ("path", "/users/{id}")];
        assert!(metrics.sum("http_requests_total", &[route[0], route[1], ("status", "404")]) >= 1.0);
        assert!(metrics.sum("http_requests_total", &[route[0], route[1], ("status", "200")]) >= 1.0);
        assert!(metrics.has("http_request_duration_seconds_bucket", &[route[1], ("le", "+Inf")]));
        assert!(metrics.has("http_request_duration_seconds_count", &[("path", "/users")]));
        assert!(metrics.has("http_request_duration_seconds_sum", &[("path", "<unmatched>")]));
        let paths = metrics.label_values("path");
        for raw in ["/users/123", &own, "/no/such/url/xyz", "/users/"] {
            assert!(!paths.contains(raw), "raw URL {raw} became a label: {paths:?}");
        }
        assert!(!metrics.text.contains("/no/such"), "an unmatched URL reached /metrics");
        assert!(
            paths.iter().all(|p| p.starts_with('/') || *p == "<unmatched>"),
            "{paths:?}"
        );

        for (name, labels) in [
            ("password_hash_duration_seconds_bucket", &[("le", "+Inf")][..]),
            ("password_hash_duration_seconds_count", &[]),
            ("db_pool_connections", &[("state", "idle")]),
            ("db_pool_connections", &[("state", "in_use")]),
            ("db_pool_connections", &[("state", "max")]),
            ("process_resident_memory_bytes", &[]),
            ("process_cpu_seconds_total", &[]),
            ("process_open_fds", &[]),
            ("process_start_time_seconds", &[]),
        ] {
            assert!(metrics.has(name, labels), "{name}{labels:?} missing:\n{}", metrics.text);
        }
        assert!(metrics.sum("db_pool_connections", &[("state", "max")]) >= 1.0);
        assert!(metrics.sum("process_resident_memory_bytes", &[]) > 0.0);
        assert!(metrics.text.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(metrics.text.contains("# TYPE http_request_duration_seconds histogram"));
    }
);

backend_test!(
    async fn every_request_moves_its_own_series_not_only_the_first(app) {
        let admin = app.admin().await;
        let own = format!("/users/{}", admin.id);
        let ok = [("method", "GET"), ("path", "/users/{id}"), ("status", "200")];
        let missing = [("method", "GET"), ("path", "/users/{id}"), ("status", "404")];
        // Series are process-wide and other tests run beside this one: counts only grow, so
        // each must have grown by at least what this test sent.
        let before = scrape(&app).await;
        for _ in 0..4 {
            assert_eq!(app.get(&own, Some(&admin.token)).await.status(), StatusCode::OK);
        }
        for _ in 0..3 {
            assert_eq!(app.get("/users/987654", Some(&admin.token)).await.status(), StatusCode::NOT_FOUND);
        }
        let after = scrape(&app).await;
        for (labels, sent) in [(&ok, 4.0), (&missing, 3.0)] {
            for name in ["http_requests_total", "http_request_duration_seconds_count"] {
                let grown = after.sum(name, labels) - before.sum(name, labels);
                assert!(grown >= sent, "{name}{labels:?} grew by {grown}, {sent} sent");
            }
        }
    }
);

backend_test!(
    async fn registrations_logins_and_refreshes_move_their_counters(app) {
        let before = scrape(&app).await;
        let admin = app.admin().await; // one successful login
        let n = app.unique();
        let email = format!("counted{n}@example.com");
        let registered = app
            .post_json("/auth/register", None, &json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(registered.status(), StatusCode::CREATED);
        let id = crate::helpers::body(registered).await["id"].as_i64().unwrap();
        let created = app
            .post_json(
                "/users",
                Some(&admin.token),
                &json!({"email": format!("made{n}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let (_, refresh) = app.login_pair(&email, PASSWORD).await;
        assert_eq!(app.login_form(&email, "wrong-password-1").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.refresh(&refresh).await.status(), StatusCode::OK);
        assert_eq!(
            app.refresh("not-a-refresh-token").await.status(),
            StatusCode::UNAUTHORIZED
        );
        let deactivate = format!("/users/{id}/deactivate");
        assert_eq!(app.put(&deactivate, Some(&admin.token)).await.status(), StatusCode::OK);
        assert_eq!(app.login_form(&email, PASSWORD).await.status(), StatusCode::FORBIDDEN);

        let after = scrape(&app).await;
        let grew = |name: &str, labels: &[(&str, &str)], by: f64| {
            let (was, is) = (before.sum(name, labels), after.sum(name, labels));
            assert!(is - was >= by, "{name}{labels:?}: {was} → {is}, expected +{by}");
        };
        grew("users_registered_total", &[], 2.0);
        grew("logins_total", &[("result", "success")], 2.0);
        grew("logins_total", &[("result", "failure")], 1.0);
        grew("logins_total", &[("result", "inactive")], 1.0);
        grew("token_refresh_total", &[("result", "success")], 1.0);
        grew("token_refresh_total", &[("result", "failure")], 1.0);
        // Series exist from the start, so dashboards show zero rather than nothing.
        assert!(after.has("logins_total", &[("result", "throttled")]));
    }
);

#[tokio::test]
async fn metrics_token_guards_the_endpoint_when_set() {
    let token = "metrics-scraper-token-0123";
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.metrics_token = Some(users_api::domain::SecretString::new(token));
    })
    .await
    .unwrap();
    let anonymous = app.get("/metrics", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        crate::helpers::body(anonymous).await,
        json!({"detail": "Not authenticated"})
    );
    for wrong in [
        "wrong",
        "metrics-scraper-token-012",
        "metrics-scraper-token-01234",
    ] {
        assert_eq!(
            app.get("/metrics", Some(wrong)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let allowed = app.get("/metrics", Some(token)).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(allowed.text().await.unwrap().contains("http_requests_total"));
    // Nothing else is affected.
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_stay_out_of_the_openapi_document() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let spec = crate::helpers::body(app.get("/openapi.json", None).await).await;
    assert!(spec["paths"].get("/metrics").is_none());
}

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label
/// names, durations or string contents.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    ];
    // Blank out strings, label matchers, ranges and grouping clauses.
    let mut cleaned = String::new();
    let mut depth: Vec<char> = Vec::new();
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' | '[' => depth.push(c),
            '}' | ']' => {
                depth.pop();
            }
            _ if !depth.is_empty() => {}
            c => cleaned.push(c),
        }
    }
    let mut names = BTreeSet::new();
    let chars: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let lower = word.to_ascii_lowercase();
            if KEYWORDS.contains(&lower.as_str()) {
                // `by (le, path)`: the parenthesised names are labels.
                skip_group = matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
            } else if next != Some(&'(') {
                names.insert(word);
            }
        } else if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers, including `1e3`.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every `expr` of a dashboard, wherever it sits in the JSON.
fn dashboard_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// `expr:` values of a Prometheus rules file: inline, quoted, or block scalars (`|`, `>`).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(rest.trim_matches(|c| c == '\'' || c == '"').to_owned());
        }
    }
    exprs
}

#[test]
fn promql_names_are_told_apart_from_functions_and_labels() {
    let names = promql_metric_names(
        r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{status=~"5.."}[1m])) by (le, path)) > 0.5 and on() up == 1e3"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["http_request_duration_seconds_bucket".to_owned(), "up".to_owned()])
    );
    let yaml = "      - alert: A\n        expr: |\n          sum(rate(x_total[5m]))\n            / y\n        for: 5m\n      - alert: B\n        expr: z == 0\n";
    assert_eq!(rule_exprs(yaml), ["sum(rate(x_total[5m])) / y", "z == 0"]);
}

#[tokio::test]
async fn every_metric_the_dashboards_and_alerts_query_is_exported() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let user = app.user().await; // a hash, a registration, a login
    let (_, refresh) = app.login_pair(&user.email, PASSWORD).await;
    app.refresh(&refresh).await;
    app.get("/no/such/thing", None).await;
    app.get("/metrics", None).await; // histograms appear once a request has been measured
    let metrics = scrape(&app).await;
    let exported = metrics.names();

    let root = env!("CARGO_MANIFEST_DIR");
    let mut exprs = Vec::new();
    let dashboards = std::fs::read_dir(format!("{root}/deploy/grafana/dashboards")).unwrap();
    for entry in dashboards {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            dashboard_exprs(&dashboard, &mut exprs);
        }
    }
    let alerts = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml")).unwrap();
    let alert_exprs = rule_exprs(&alerts);
    assert!(alert_exprs.len() >= 4, "{alert_exprs:?}");
    exprs.extend(alert_exprs);

    let mut queried = BTreeSet::new();
    for expr in &exprs {
        queried.extend(promql_metric_names(expr));
    }
    // `up` is written by Prometheus itself, not by the target.
    queried.remove("up");
    assert!(queried.len() >= 8, "suspiciously few names: {queried:?}");
    let missing: Vec<&String> = queried
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
}

// ---- the real binary -------------------------------------------------------------------------

/// Logs of a server, collected as they arrive.
struct Logs(Vec<String>);

impl Logs {
    fn drain(&mut self, server: &Server) {
        self.0.extend(server.logs.try_iter());
    }

    /// Waits (without blocking the runtime) for a line containing every one of `needles`.
    async fn wait_for(&mut self, server: &Server, needles: &[&str], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            self.drain(server);
            if let Some(i) = self.find(needles) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}:\n{}",
                self.0.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn find(&self, needles: &[&str]) -> Option<usize> {
        self.0.iter().position(|l| needles.iter().all(|n| l.contains(n)))
    }

    fn rfind(&self, needles: &[&str]) -> Option<usize> {
        self.0.iter().rposition(|l| needles.iter().all(|n| l.contains(n)))
    }
}

fn sigterm(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit; a hang past `within` fails the test.
async fn exit_status(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn register(base: &str, email: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// `n` concurrent logins, each on its own connection, answering their status (or the error).
fn login_burst(base: &str, email: &str, n: usize) -> Vec<tokio::task::JoinHandle<Result<u16, String>>> {
    (0..n)
        .map(|_| {
            let (url, email) = (format!("{base}/auth/login"), email.to_owned());
            tokio::spawn(async move {
                // A client each, so no request waits for another's connection.
                let r = reqwest::Client::new()
                    .post(url)
                    .form(&[("username", email.as_str()), ("password", PASSWORD)])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(r.status().as_u16())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_logins_finish_and_exits_zero() {
    let scratch = Scratch::new();
    // One hash at a time: 20 logins take 20 Argon2 verifications back to back.
    let mut server = serve(
        &scratch,
        &[
            ("HASH_CONCURRENCY", "1"),
            ("SHUTDOWN_DELAY_SECS", "0"),
            ("AUTH_RATE_PER_SECOND", "0"),
        ],
    );
    let mut logs = Logs(Vec::new());
    register(&server.base, "burst@example.com").await;
    let burst = login_burst(&server.base, "burst@example.com", 20);
    // Once the first login is answered, the other 19 have long been accepted and are queued
    // behind the hash permit.
    logs.wait_for(
        &server,
        &["request completed", "/auth/login"],
        Duration::from_secs(30),
    )
    .await;
    sigterm(&server);

    for login in burst {
        assert_eq!(login.await.unwrap(), Ok(200), "an in-flight login was cut off");
    }
    let status = exit_status(&mut server, Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    logs.drain(&server);
    let stopped = logs
        .find(&["stopped accepting connections"])
        .expect("the listener was closed");
    let last_login = logs.rfind(&["request completed", "/auth/login"]).unwrap();
    assert!(
        last_login > stopped,
        "no login was still in flight when the listener closed, so this test proved nothing"
    );
    assert!(logs.find(&["shutdown complete"]).unwrap() > last_login);
    assert_eq!(
        logs.0
            .iter()
            .filter(|l| l.contains("request completed") && l.contains("/auth/login"))
            .count(),
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_as_soon_as_shutdown_begins_while_requests_are_still_served() {
    let scratch = Scratch::new();
    let mut server = serve(
        &scratch,
        &[
            ("HASH_CONCURRENCY", "1"),
            ("SHUTDOWN_DELAY_SECS", "4"),
            ("AUTH_RATE_PER_SECOND", "0"),
        ],
    );
    let client = reqwest::Client::new();
    let base = server.base.clone();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    register(&base, "drain@example.com").await;
    let mut logs = Logs(Vec::new());
    let burst = login_burst(&base, "drain@example.com", 10);
    logs.wait_for(
        &server,
        &["request completed", "/auth/login"],
        Duration::from_secs(30),
    )
    .await;
    let signalled = Instant::now();
    sigterm(&server);

    // The signal is handled asynchronously; readiness must flip well within the delay.
    let ready = loop {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        if r.status() == 503 || signalled.elapsed() > Duration::from_secs(2) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"detail": "shutting down"})
    );
    // Still serving during the delay: liveness and real work both answer.
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let late = client
        .post(format!("{base}/auth/login"))
        .form(&[("username", "drain@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 200);
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "checked too late to prove anything"
    );

    for login in burst {
        assert_eq!(login.await.unwrap(), Ok(200));
    }
    let status = exit_status(&mut server, Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(4),
        "the delay was not honoured"
    );
    // After the delay the listener is gone.
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_requests_still_running_at_the_deadline() {
    let scratch = Scratch::new();
    let mut server = serve(
        &scratch,
        &[
            ("HASH_CONCURRENCY", "1"),
            ("SHUTDOWN_TIMEOUT_SECS", "1"),
            ("AUTH_RATE_PER_SECOND", "0"),
        ],
    );
    register(&server.base, "slow@example.com").await;
    let mut logs = Logs(Vec::new());
    // Far more Argon2 work than fits in one second at one hash at a time.
    let burst = login_burst(&server.base, "slow@example.com", 150);
    logs.wait_for(
        &server,
        &["request completed", "/auth/login"],
        Duration::from_secs(30),
    )
    .await;
    let signalled = Instant::now();
    sigterm(&server);
    let status = exit_status(&mut server, Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?} to exit");
    let mut answered = 0;
    for login in burst {
        answered += usize::from(login.await.unwrap() == Ok(200));
    }
    assert!(
        answered < 150,
        "every login finished; the deadline was never reached"
    );
    logs.drain(&server);
    assert!(
        logs.find(&["SHUTDOWN_TIMEOUT_SECS"]).is_some(),
        "{}",
        logs.0.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_is_written_and_rotated_at_the_size_limit_without_secrets() {
    let scratch = Scratch::new();
    let dir = scratch.0.join("logs");
    let file = dir.join("users-api.log");
    let metrics_token = "metrics-token-never-logged-42";
    let mut server = serve(
        &scratch,
        &[
            ("LOG_FILE", file.to_str().unwrap()),
            ("LOG_FILE_MAX_BYTES", "2048"),
            ("LOG_FILE_MAX_FILES", "2"),
            ("METRICS_TOKEN", metrics_token),
        ],
    );
    let client = reqwest::Client::new();
    for _ in 0..60 {
        client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
    }
    sigterm(&server); // a clean exit flushes the background writer
    assert!(exit_status(&mut server, Duration::from_secs(20)).await.success());

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["users-api.log", "users-api.log.1", "users-api.log.2"],
        "the current file and at most LOG_FILE_MAX_FILES rotated ones"
    );
    let mut all = String::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        // Rotation happens after the write that crosses the limit: at most one line over.
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(text.len() <= 2048 + longest + 1, "{name} is {} bytes", text.len());
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("{name}: a cut line: {line}"));
        }
        all.push_str(&text);
    }
    assert!(all.contains("\"route\":\"/healthz\""));
    assert!(
        all.contains("shutdown complete"),
        "the newest lines are in the current file"
    );

    // The start-up configuration went to stdout, with the secrets masked.
    let config = server
        .startup
        .iter()
        .find(|l| l.contains("effective configuration"))
        .expect("the configuration is logged");
    let entry: Value = serde_json::from_str(config).unwrap();
    assert_eq!(entry["metrics_token"], "[set]");
    assert_eq!(entry["jwt_secret_key"], "[set]");
    assert_eq!(entry["log_file_max_bytes"], 2048);
    let mut stdout = server.startup.clone();
    stdout.extend(server.logs.try_iter());
    let stdout = stdout.join("\n");
    assert!(!stdout.contains(metrics_token) && !stdout.contains(crate::helpers::JWT_SECRET));
    assert!(!all.contains(metrics_token) && !all.contains(crate::helpers::JWT_SECRET));
}
