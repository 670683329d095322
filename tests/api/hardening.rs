//! The front door: login throttling (on the service clock), the request-rate shield, security
//! headers, CORS and client addresses behind trusted proxies.

use chrono::TimeDelta;
use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, body};

fn retry_after(r: &Response) -> i64 {
    r.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

async fn attempt(app: &TestApp, login: &str, password: &str) -> Response {
    app.login_form(login, password).await
}

backend_test!(
    async fn failed_logins_are_slowed_then_locked_and_answered_429(app) {
        let user = app.user().await;
        for _ in 0..3 {
            assert_eq!(attempt(&app, &user.email, "wrong-guess-1").await.status(), StatusCode::UNAUTHORIZED);
        }
        // Slowed: the next attempt must wait a second, then two.
        let r = attempt(&app, &user.email, "wrong-guess-1").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&r), 1);
        assert!(body(r).await["detail"].as_str().unwrap().contains("try again in 1 seconds"));
        app.clock.advance(TimeDelta::seconds(1));
        assert_eq!(attempt(&app, &user.email, "wrong-guess-1").await.status(), StatusCode::UNAUTHORIZED);
        let r = attempt(&app, &user.email, "wrong-guess-1").await;
        assert_eq!((r.status(), retry_after(&r)), (StatusCode::TOO_MANY_REQUESTS, 2));
        app.clock.advance(TimeDelta::seconds(2));
        assert_eq!(attempt(&app, &user.email, "wrong-guess-1").await.status(), StatusCode::UNAUTHORIZED);
        app.clock.advance(TimeDelta::seconds(4));
        // The sixth failure locks the account for 30 s — even the right password waits.
        assert_eq!(attempt(&app, &user.email, "wrong-guess-1").await.status(), StatusCode::UNAUTHORIZED);
        let r = attempt(&app, &user.email, PASSWORD).await;
        assert_eq!((r.status(), retry_after(&r)), (StatusCode::TOO_MANY_REQUESTS, 30));
        // The compat surface shares the counters and answers in its own shape.
        let r = app.post_json("/api/login", None, &json!({"username": user.email, "password": PASSWORD})).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body(r).await["error"], "Too Many Requests");
        app.clock.advance(TimeDelta::seconds(30));
        assert_eq!(attempt(&app, &user.email, PASSWORD).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn a_successful_login_resets_the_account_and_quiet_time_decays_it(app) {
        let user = app.user().await;
        for _ in 0..3 {
            attempt(&app, &user.email, "wrong-guess-2").await;
        }
        app.clock.advance(TimeDelta::seconds(1));
        assert_eq!(attempt(&app, &user.email, PASSWORD).await.status(), StatusCode::OK);
        // Reset: three more failures in a row are not slowed.
        for _ in 0..3 {
            assert_eq!(attempt(&app, &user.email, "wrong-guess-2").await.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(attempt(&app, &user.email, "wrong-guess-2").await.status(), StatusCode::TOO_MANY_REQUESTS);
        // Fifteen quiet minutes and the count starts over.
        app.clock.advance(TimeDelta::minutes(15));
        for _ in 0..3 {
            assert_eq!(attempt(&app, &user.email, "wrong-guess-2").await.status(), StatusCode::UNAUTHORIZED);
        }
    }
);

backend_test!(
    async fn an_attacker_cannot_lock_a_user_out_for_long(app) {
        let user = app.user().await;
        // The attacker guesses at every moment the throttle allows, for well over an hour of
        // service time; the longest wait ever imposed stays at the five-minute cap.
        let mut longest = 0;
        for _ in 0..40 {
            let r = attempt(&app, &user.email, "attacker-guess").await;
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&r);
                longest = longest.max(wait);
                app.clock.advance(TimeDelta::seconds(wait));
            }
        }
        assert_eq!(longest, 300);
        // However long it went on, the real user is in once the current lock ends.
        let r = attempt(&app, &user.email, PASSWORD).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(&r);
            assert!(wait <= 300);
            app.clock.advance(TimeDelta::seconds(wait));
        }
        assert_eq!(attempt(&app, &user.email, PASSWORD).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn unknown_accounts_are_throttled_like_real_ones(app) {
        for _ in 0..3 {
            assert_eq!(attempt(&app, "ghost@example.com", "guess-guess").await.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(attempt(&app, "ghost@example.com", "guess-guess").await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
);

backend_test!(
    async fn one_address_guessing_many_accounts_is_throttled(app) {
        let user = app.user().await;
        // Ten failures on ten different accounts from one address: that address is now slowed.
        for i in 0..10 {
            assert_eq!(attempt(&app, &format!("nobody{i}@example.com"), "guess-guess").await.status(), StatusCode::UNAUTHORIZED);
        }
        let r = attempt(&app, &user.email, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the address must wait even for a good password");
        app.clock.advance(TimeDelta::seconds(retry_after(&r)));
        assert_eq!(attempt(&app, &user.email, PASSWORD).await.status(), StatusCode::OK);
    }
);

backend_test!(
    settings = |s: &mut users_api::Settings| s.trusted_proxies = "127.0.0.1".into();
    async fn behind_a_trusted_proxy_the_forwarded_address_is_counted(app) {
        let from = |ip: &'static str, login: String| {
            app.client
                .post(app.url("/auth/login"))
                .header("x-forwarded-for", format!("203.0.113.99, {ip}"))
                .form(&[("username", login), ("password", "guess-guess".to_owned())])
                .send()
        };
        for i in 0..10 {
            from("198.51.100.1", format!("n{i}@example.com")).await.unwrap();
        }
        assert_eq!(from("198.51.100.1", "x@example.com".into()).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
        // Another client behind the same proxy is not affected.
        assert_eq!(from("198.51.100.2", "y@example.com".into()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    for i in 0..10 {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .form(&[
                ("username", format!("n{i}@example.com")),
                ("password", "guess-guess".to_owned()),
            ])
            .send()
            .await
            .unwrap();
    }
    // All ten came from 127.0.0.1, whatever the header claimed.
    assert_eq!(
        attempt(&app, "z@example.com", "guess-guess").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_rate_shield_refuses_floods_on_credential_routes() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| {
        s.auth_rate_per_second = 1;
        s.auth_rate_burst = 3;
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app.post_json("/auth/register", None, &json!({})).await;
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&r) >= 1);
            assert!(
                body(r).await["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("Too many requests")
            );
        }
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{statuses:?}"
    );
    let compat = app.post_json("/api/login", None, &json!({})).await;
    assert_eq!(
        compat.status(),
        StatusCode::BAD_REQUEST,
        "a validation error, not refused by the shield yet"
    );
    // Other routes are not limited.
    for _ in 0..10 {
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    }
}

backend_test!(
    async fn every_response_carries_security_headers(app) {
        for path in ["/healthz", "/no/such/route", "/docs/", "/redoc", "/openapi.json"] {
            let r = app.get(path, None).await;
            let h = r.headers();
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
            assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{path}");
            if path.starts_with("/docs") || path.starts_with("/redoc") {
                assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
            } else {
                assert!(csp.starts_with("default-src 'none'"), "{csp}");
            }
        }
        // No CORS by default.
        let r = app.client.get(app.url("/healthz")).header("origin", "https://evil.example").send().await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
);

backend_test!(
    settings = |s: &mut users_api::Settings| s.cors_origins = "https://app.example.com".into();
    async fn cors_allows_only_configured_origins(app) {
        let preflight = |origin: &'static str| {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/users/me"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
        };
        let ok = preflight("https://app.example.com").await.unwrap();
        assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
        let evil = preflight("https://evil.example").await.unwrap();
        assert!(evil.headers().get("access-control-allow-origin").is_none());
    }
);

backend_test!(
    async fn passwords_containing_the_username_or_on_the_common_list_are_refused(app) {
        let r = app
            .post_json("/auth/register", None, &json!({"email": "kim@example.com", "username": "kimberly", "password": "Kimberly-2024!"}))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.post_json("/auth/register", None, &json!({"email": "lee@example.com", "password": "qwertyuiop"})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(r).await["detail"][0]["type"], "password_common");
    }
);

/// A request that runs past `REQUEST_TIMEOUT_SECS` answers 503 in the API's shape, with the
/// security headers, and leaves nothing behind: the service's connections go on committing,
/// and the late write does not commit once the lock is free. The register here waits for a
/// write lock another process holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_answers_503_and_the_service_goes_on() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |s| s.request_timeout_secs = 1)
        .await
        .unwrap();
    let file = app.core.sqlite_direct().unwrap().file().to_owned();
    let other = rusqlite::Connection::open(&file).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = std::time::Instant::now();
    let late = app
        .post_json(
            "/auth/register",
            None,
            &json!({"email": "late@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(late.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        late.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(body(late).await, json!({"detail": "Request timed out"}));
    let metrics = crate::observability::scrape(&app).await;
    let timed_out = [("method", "POST"), ("path", "/auth/register"), ("status", "503")];
    assert!(
        metrics.sum("http_requests_total", &timed_out) >= 1.0,
        "the 503 was not counted"
    );
    other.execute_batch("ROLLBACK").unwrap();

    // Every write after it commits, whichever pooled connection it runs on: another process
    // sees all of them.
    let mut ids = Vec::new();
    for n in 0..12 {
        let r = app
            .post_json(
                "/auth/register",
                None,
                &json!({"email": format!("after{n}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {n}");
        ids.push(body(r).await["id"].as_i64().unwrap());
    }
    let seen: i64 = other
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM users WHERE id IN ({})",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(seen, 12);
    // The late registration never happened: it was still waiting for the lock when its
    // deadline passed, and the client that got the 503 may register again.
    let late_users: i64 = other
        .query_row(
            "SELECT COUNT(*) FROM users WHERE email = 'late@example.com'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        late_users, 0,
        "a registration answered 503 was committed after all"
    );
    let again = app
        .post_json(
            "/auth/register",
            None,
            &json!({"email": "late@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
}
