//! The per-request lookups that skip sea-orm (`store::Direct`: on the calling thread for a
//! SQLite file, pipelined for PostgreSQL) must answer what sea-orm answers, and whatever they
//! cannot answer must still be answered, through sqlx.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::json;
use users_api::store::sqlite_direct::SqliteDirect;
use users_api::store::{Direct, sessions, users};

use crate::helpers::{Backend, TestApp, body, spawn_app, spawn_app_with};
use crate::observability::scrape;

async fn sqlite_app() -> TestApp {
    spawn_app(Backend::Sqlite).await.expect("SQLite needs no server")
}

/// Another connection to the app's SQLite file, as another process (a CLI command, say) would
/// have.
fn second_process(reads: &SqliteDirect) -> rusqlite::Connection {
    let other = rusqlite::Connection::open(reads.file()).unwrap();
    other.busy_timeout(Duration::from_secs(5)).unwrap();
    other
}

backend_test!(
    async fn direct_lookups_give_what_the_orm_gives(app) {
        let Some(reads) = app.core.direct.clone() else {
            assert_eq!(
                app.core.db.get_database_backend(),
                sea_orm::DbBackend::MySql,
                "SQLite files and PostgreSQL over plain connections get direct lookups"
            );
            return;
        };
        direct_answers_match(&app, &reads).await;
    }
);

async fn direct_answers_match(app: &TestApp, reads: &Direct) {
    let admin = app.admin().await;
    let user = app.user().await;
    let t = Some(user.token.as_str());
    // Every optional column of the user filled in.
    let r = app
        .post_json(
            "/profile/",
            t,
            &json!({"bio": "Ünïcode bio", "location": "Oslo", "website": "https://example.org",
                    "phone_number": "+47 555 01 23", "birth_date": "1990-05-15", "avatar_url": "https://example.org/a.png"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .put_json("/profile/preferences", t, &json!({"theme": "dark", "n": 1}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .put_json(
            &format!("/users/{}", user.id),
            Some(&admin.token),
            &json!({"full_name": "Åse Ørn", "email": format!("Mixed.Case.{}@Example.ORG", user.id)}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // Every role on the administrator: several roles and permissions in the JSON lists.
    let roles = body(app.get("/rbac/roles", Some(&admin.token)).await).await;
    let role_ids: Vec<i64> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(role_ids.len() > 1, "{roles}");
    let r = app
        .post_json(
            &format!("/rbac/users/{}/roles", admin.id),
            Some(&admin.token),
            &json!({"user_id": admin.id, "role_ids": role_ids}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());

    for (id, token) in [(user.id, &user.token), (admin.id, &admin.token)] {
        let direct = reads
            .user(id, None)
            .await
            .expect("answered directly")
            .expect("the user exists");
        let orm = users::find(&app.core.db, id)
            .await
            .unwrap()
            .expect("the user exists");
        assert_eq!(*direct, orm);

        let sid = app
            .core
            .tokens
            .verify(token, app.clock.now())
            .unwrap()
            .sid
            .clone();
        let direct = reads
            .session_grant(&sid, app.clock.now())
            .await
            .expect("answered directly")
            .expect("session exists");
        let orm = sessions::find_with_user_and_grants(&app.core.db, None, &sid, app.clock.now())
            .await
            .unwrap()
            .expect("session exists");
        assert_eq!(direct.grant.user, orm.grant.user);
        assert_eq!(direct.expires_at, orm.expires_at);
        assert_eq!(direct.revoked_at, orm.revoked_at);
        assert_eq!(direct.grant.roles, orm.grant.roles);
        assert_eq!(direct.grant.permissions, orm.grant.permissions);
    }
    let filled = reads.user(user.id, None).await.unwrap().unwrap();
    assert!(filled.birth_date.is_some() && filled.preferences.is_some() && filled.last_login_at.is_some());
    let admin_grant = {
        let sid = app
            .core
            .tokens
            .verify(&admin.token, app.clock.now())
            .unwrap()
            .sid
            .clone();
        reads.session_grant(&sid, app.clock.now()).await.unwrap().unwrap()
    };
    assert!(
        admin_grant.grant.roles.contains(&"admin".to_owned()),
        "{:?}",
        admin_grant.grant.roles
    );
    assert!(
        admin_grant.grant.permissions.len() > 1,
        "{:?}",
        admin_grant.grant.permissions
    );

    // Unknown ids and sessions are answered too, as absent.
    assert_eq!(reads.user(i64::MAX, None).await, Some(None));
    assert!(matches!(
        reads.session_grant("no-such-session", app.clock.now()).await,
        Some(None)
    ));

    // A logout is seen by the very next direct read.
    let sid = app
        .core
        .tokens
        .verify(&user.token, app.clock.now())
        .unwrap()
        .sid
        .clone();
    assert_eq!(app.post("/auth/logout", t).await.status(), StatusCode::NO_CONTENT);
    assert!(
        reads
            .session_grant(&sid, app.clock.now())
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(app.get("/auth/me", t).await.status(), StatusCode::UNAUTHORIZED);

    // SQLite also reads refresh tokens directly.
    let Some(reads) = reads.sqlite() else {
        return;
    };

    // A refresh token of a session used again later: every timestamp of the token and the
    // session differs from its neighbours.
    let (_, first) = app.login_pair(&admin.email, &admin.password).await;
    app.clock.advance(chrono::TimeDelta::seconds(90));
    let second = body(app.refresh(&first).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(chrono::TimeDelta::seconds(90));
    for token in [&first, &second] {
        let hash = users_api::auth::token::hash_refresh_token(token);
        let direct = reads.refresh_token(&hash).expect("answered directly");
        let orm = sessions::find_refresh(&app.core.db, None, &hash).await.unwrap();
        assert!(direct.is_some());
        assert_eq!(direct, orm);
    }
    let (spent, session, _) = reads
        .refresh_token(&users_api::auth::token::hash_refresh_token(&first))
        .unwrap()
        .unwrap();
    assert!(spent.used_at.is_some() && session.last_used_at > session.created_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_only_sqlx_parses_is_still_served() {
    let app = sqlite_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    // SQLite's own `datetime()` spelling without seconds, as a hand-edited row might have it:
    // sqlx reads it, the direct read does not, so the request must fall back, not fail.
    ConnectionTrait::execute_unprepared(
        &app.core.db,
        &format!(
            "UPDATE users SET created_at = '2026-01-02 03:04' WHERE id = {}",
            user.id
        ),
    )
    .await
    .unwrap();
    let reads = app.core.sqlite_direct().unwrap();
    assert_eq!(
        reads.user(user.id, None),
        None,
        "the direct read gives up on this value"
    );

    let r = app.get(&format!("/users/{}", user.id), Some(&admin.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fetched = body(r).await;
    assert!(
        fetched["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-02T03:04:00"),
        "{fetched}"
    );
    let me = app.get("/auth/me", Some(&user.token)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(body(me).await["id"], user.id);
}

/// A SQLite file's auth and user lookups keep their answers while nobody commits: repeated
/// requests are served from what was kept, and a commit by anyone, through the service's own
/// pool or through another connection to the file as a second process would make it, is seen
/// by the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kept_answers_last_exactly_until_someone_commits() {
    let app = sqlite_app().await;
    let reads = app.core.sqlite_direct().unwrap();
    let admin = app.admin().await;
    let user = app.user().await;
    let user_path = format!("/users/{}", user.id);
    let me = || app.get("/auth/me", Some(&user.token));
    let read_user = || app.get(&user_path, Some(&admin.token));
    let name = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::OK);
        body(response).await["full_name"].clone()
    };

    let served = reads.kept_served();
    for _ in 0..3 {
        assert_eq!(me().await.status(), StatusCode::OK);
        assert_eq!(read_user().await.status(), StatusCode::OK);
    }
    // Three lookups a round (the user's session, the admin's, the user read), read in the
    // first round and kept in the next two.
    assert!(
        reads.kept_served() >= served + 6,
        "served from what was kept: {} -> {}",
        served,
        reads.kept_served()
    );

    let other = second_process(reads);
    other
        .execute(
            "UPDATE users SET full_name = 'Another Process' WHERE id = ?1",
            [user.id],
        )
        .unwrap();
    assert_eq!(name(me().await).await, "Another Process");
    assert_eq!(name(read_user().await).await, "Another Process");
    let served = reads.kept_served();
    assert_eq!(name(me().await).await, "Another Process");
    assert!(reads.kept_served() > served, "kept again once read again");

    // Through the service's own pool.
    role_changes_by_hand_hold_at_once(&app, user.id, &user.token).await;

    // A session revoked from outside, and a user deactivated by hand, are refused at once.
    assert_eq!(me().await.status(), StatusCode::OK);
    other
        .execute(
            "UPDATE sessions SET revoked_at = '2026-01-01T00:00:00+00:00' WHERE user_id = ?1",
            [user.id],
        )
        .unwrap();
    assert_eq!(me().await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(read_user().await.status(), StatusCode::OK);
    by_hand(
        &app,
        &format!("UPDATE users SET is_active = 0 WHERE id = {}", admin.id),
    )
    .await;
    assert_eq!(read_user().await.status(), StatusCode::UNAUTHORIZED);
}

/// Reading one user through kept answers on SQLite asks whether anyone committed once a
/// request, not once per lookup: the user lookup takes the generation its request's auth lookup
/// confirmed. A commit in between is still seen by the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_sqlite_user_read_asks_for_the_data_version_once() {
    let app = sqlite_app().await;
    let reads = app.core.sqlite_direct().unwrap();
    let admin = app.admin().await;
    let user = app.user().await;
    let path = format!("/users/{}", user.id);
    for _ in 0..2 {
        assert_eq!(app.get(&path, Some(&admin.token)).await.status(), StatusCode::OK);
    }
    let (checks, served) = (reads.version_checks(), reads.kept_served());
    for _ in 0..5 {
        let r = app.get(&path, Some(&admin.token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await["email"], user.email.as_str());
    }
    assert_eq!(reads.version_checks() - checks, 5, "one question a request");
    assert_eq!(
        reads.kept_served() - served,
        10,
        "both lookups served from what was kept"
    );

    second_process(reads)
        .execute(
            "UPDATE users SET full_name = 'Seen At Once' WHERE id = ?1",
            [user.id],
        )
        .unwrap();
    let r = app.get(&path, Some(&admin.token)).await;
    assert_eq!(body(r).await["full_name"], "Seen At Once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_rotation_writes_what_sqlx_writes() {
    use sea_orm::{DbBackend, Statement};
    let app = sqlite_app().await;
    let user = app.user().await;
    let (_, first) = app.login_pair(&user.email, &user.password).await;
    let r = app.refresh(&first).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = body(r).await["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.refresh(&second).await.status(), StatusCode::OK);

    // The login's token was written by sqlx, the two successors by the direct rotation: every
    // timestamp must be spelled alike, or text comparisons in SQL would go wrong.
    let rows = app
        .core
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT t.created_at, t.expires_at, t.used_at, s.last_used_at, s.expires_at AS session_expires_at \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.session_id = (SELECT session_id FROM refresh_tokens ORDER BY id DESC LIMIT 1) \
             ORDER BY t.id",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "the login's token and two successors");
    let spelling = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.contains('T') && text.ends_with("+00:00")
    };
    for (i, row) in rows.iter().enumerate() {
        let created: String = row.try_get("", "created_at").unwrap();
        let expires: String = row.try_get("", "expires_at").unwrap();
        assert!(
            spelling(&created) && spelling(&expires),
            "row {i}: {created} {expires}"
        );
        let used: Option<String> = row.try_get("", "used_at").unwrap();
        assert_eq!(used.is_some(), i < 2, "row {i}: only the last token is unspent");
        if let Some(used) = used {
            assert!(spelling(&used), "{used}");
        }
    }
    let last = &rows[2];
    let session_expires: String = last.try_get("", "session_expires_at").unwrap();
    let token_expires: String = last.try_get("", "expires_at").unwrap();
    assert_eq!(session_expires, token_expires, "the rotation slid the session");

    // Spent tokens stay spent: past the grace window a replay ends the session.
    app.clock.advance(chrono::TimeDelta::seconds(3600));
    assert_eq!(app.refresh(&first).await.status(), StatusCode::UNAUTHORIZED);
}

/// The PostgreSQL test databases are reached with `sslmode=disable` (see helpers); a
/// deployment may spell the URL otherwise, and where sqlx would encrypt its connections the
/// pipelined reads must not go around it in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_reads_stay_off_where_sqlx_would_use_tls() {
    let with_sslmode = |mode: &'static str| {
        move |s: &mut users_api::Settings| {
            s.database_url = s.database_url.replace("sslmode=disable", mode);
        }
    };
    let Some(app) = spawn_app_with(Backend::Postgres, with_sslmode("sslmode=require")).await else {
        return;
    };
    assert!(app.core.direct.is_none(), "sslmode=require");
    let user = app.user().await;
    assert_eq!(
        app.get("/auth/me", Some(&user.token)).await.status(),
        StatusCode::OK
    );

    // `prefer`, the default: sqlx encrypts exactly when the server offers TLS.
    let app = spawn_app_with(Backend::Postgres, with_sslmode("sslmode=prefer"))
        .await
        .unwrap();
    let row = one_row(&app, "SELECT current_setting('ssl') AS ssl").await;
    let server_ssl: String = row.try_get("", "ssl").unwrap();
    assert_eq!(
        app.core.direct.is_some(),
        server_ssl == "off",
        "server ssl = {server_ssl}"
    );
    let user = app.user().await;
    assert_eq!(
        app.get("/auth/me", Some(&user.token)).await.status(),
        StatusCode::OK
    );

    let app = spawn_app_with(Backend::Postgres, |s| s.db_pipeline_connections = Some(0))
        .await
        .unwrap();
    assert!(app.core.direct.is_none(), "DB_PIPELINE_CONNECTIONS=0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_client_the_server_dropped_is_opened_again() {
    let Some(app) = spawn_app_with(Backend::Postgres, |s| s.db_pipeline_connections = Some(1)).await else {
        return;
    };
    let reads = pipelined_reads(&app);
    let admin = app.admin().await;
    let user = app.user().await;
    assert!(reads.user(user.id, None).await.is_some(), "answered directly");

    let row = one_row(
        &app,
        "SELECT COUNT(pg_terminate_backend(pid)) AS ended FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'users-api pipelined reads'",
    )
    .await;
    assert_eq!(
        row.try_get::<i64>("", "ended").unwrap(),
        1,
        "the one pipelined client"
    );

    // Requests go on being answered while the client is down (sqlx answers them)...
    for _ in 0..5 {
        let r = app.get(&format!("/users/{}", user.id), Some(&admin.token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await["id"], user.id);
    }
    // ...and the client is opened again, in the background, within a few seconds.
    let mut answered = false;
    for _ in 0..50 {
        if reads.user(user.id, None).await.is_some() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "the pipelined client came back");
    let r = app.get("/auth/me", Some(&user.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// The app's pipelined PostgreSQL lookups, which the test databases' plain connections allow.
fn pipelined_reads(app: &TestApp) -> Direct {
    app.core
        .direct
        .clone()
        .expect("pipelined reads over a plain connection")
}

/// Runs `sql` on the test database, as an operator at a `psql` prompt would.
async fn by_hand(app: &TestApp, sql: &str) {
    app.core.db.execute_unprepared(sql).await.unwrap();
}

/// The pipelined reads keep what they read while the auth epoch stands still: a change the
/// epoch triggers do not see (here, with them switched off) is not read again, which shows the
/// answers are kept; every change they do see, whoever makes it, is seen by the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_last_exactly_until_the_data_changes() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    assert!(
        app.core.direct.is_some(),
        "pipelined reads over a plain connection"
    );
    let admin = app.admin().await;
    let user = app.user().await;
    let name_of = |response: reqwest::Response| async move { body(response).await["full_name"].clone() };
    let user_path = format!("/users/{}", user.id);
    let served = &app;
    let kept = |lookup| async move {
        let metrics = scrape(served).await;
        metrics.sum(
            "pipelined_lookups_total",
            &[("lookup", lookup), ("answer", "kept")],
        )
    };
    let (sessions_before, users_before) = (kept("session").await, kept("user").await);
    for _ in 0..3 {
        assert_eq!(
            app.get("/auth/me", Some(&user.token)).await.status(),
            StatusCode::OK
        );
        let r = app.get(&user_path, Some(&admin.token)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // `/metrics` counts for the whole process (other tests too), so at least.
    assert!(
        kept("session").await >= sessions_before + 4.0,
        "served from what was kept"
    );
    assert!(kept("user").await >= users_before + 2.0);

    // Unseen by the epoch: both lookups keep answering what they read.
    by_hand(&app, "ALTER TABLE users DISABLE TRIGGER users_auth_epoch").await;
    let hidden = format!(
        "UPDATE users SET full_name = 'Changed Unseen' WHERE id = {}",
        user.id
    );
    by_hand(&app, &hidden).await;
    by_hand(&app, "ALTER TABLE users ENABLE TRIGGER users_auth_epoch").await;
    assert_ne!(
        name_of(app.get("/auth/me", Some(&user.token)).await).await,
        "Changed Unseen",
        "/auth/me kept"
    );
    assert_ne!(
        name_of(app.get(&user_path, Some(&admin.token)).await).await,
        "Changed Unseen",
        "/users/{{id}} kept"
    );

    // Seen: an update by hand reaches both at once.
    by_hand(
        &app,
        &format!("UPDATE users SET full_name = 'By Hand' WHERE id = {}", user.id),
    )
    .await;
    assert_eq!(
        name_of(app.get("/auth/me", Some(&user.token)).await).await,
        "By Hand"
    );
    assert_eq!(
        name_of(app.get(&user_path, Some(&admin.token)).await).await,
        "By Hand"
    );

    role_changes_by_hand_hold_at_once(&app, user.id, &user.token).await;

    // The fold keeps the epoch's sum, so kept answers stay kept across it.
    let epoch = || async {
        let row = one_row(&app, "SELECT count(*) AS rows FROM auth_epoch").await;
        (auth_epoch(&app).await, row.try_get::<i64>("", "rows").unwrap())
    };
    by_hand(&app, "INSERT INTO auth_epoch (pid, n) VALUES (-1, 5)").await;
    let (before, rows) = epoch().await;
    assert!(rows >= 2, "row 0 and an ended process's row");
    assert!(
        users_api::store::pg_direct::fold_auth_epoch(&app.core.db)
            .await
            .unwrap()
    );
    let (after, rows_after) = epoch().await;
    assert_eq!(after, before, "folding keeps the sum");
    assert!(rows_after < rows, "the ended process's row went");

    // A session revoked or a user deactivated by hand is refused at once.
    by_hand(
        &app,
        &format!(
            "UPDATE sessions SET revoked_at = now() WHERE user_id = {}",
            user.id
        ),
    )
    .await;
    assert_eq!(
        app.get("/auth/me", Some(&user.token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.get(&format!("/users/{}", admin.id), Some(&admin.token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    by_hand(
        &app,
        &format!("UPDATE users SET is_active = false WHERE id = {}", admin.id),
    )
    .await;
    let r = app.get(&format!("/users/{}", admin.id), Some(&admin.token)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Reading one user through kept answers asks for the epoch once, not once per lookup: the
/// user lookup takes the epoch its own request's auth lookup was confirmed at a moment before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_user_read_asks_for_the_epoch_once() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let Some(Direct::Postgres(reads)) = app.core.direct.clone() else {
        panic!("pipelined reads over a plain connection");
    };
    let admin = app.admin().await;
    let user = app.user().await;
    let path = format!("/users/{}", user.id);
    for _ in 0..2 {
        assert_eq!(app.get(&path, Some(&admin.token)).await.status(), StatusCode::OK);
    }
    let before = reads.epoch_queries();
    for _ in 0..5 {
        let r = app.get(&path, Some(&admin.token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await["email"], user.email.as_str());
    }
    assert_eq!(reads.epoch_queries() - before, 5, "one epoch query a request");

    // A change in between is still seen by the next read: its auth check reads the new epoch,
    // which leaves nothing kept for the user lookup to take.
    by_hand(
        &app,
        &format!(
            "UPDATE users SET full_name = 'Seen At Once' WHERE id = {}",
            user.id
        ),
    )
    .await;
    let r = app.get(&path, Some(&admin.token)).await;
    assert_eq!(body(r).await["full_name"], "Seen At Once");
}

/// Concurrent checks share epoch queries; still, a request that starts after a logout has
/// answered is refused, however many requests with the same token are in flight around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_holds_at_once_for_requests_in_flight_around_it() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    let user = app.user().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (app, token, stop) = (app.clone(), user.token.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let status = app.get("/auth/me", Some(&token)).await.status();
                seen.push((started, status));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.post("/auth/logout", Some(&user.token)).await.status(),
        StatusCode::NO_CONTENT
    );
    let logged_out = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut before, mut after) = (0, 0);
    for reader in readers {
        for (started, status) in reader.await.unwrap() {
            if started > logged_out {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "a request after the logout");
                after += 1;
            } else if status == StatusCode::OK {
                before += 1;
            }
        }
    }
    assert!(
        before > 8 && after > 8,
        "requests on both sides: {before} before, {after} after"
    );
}

/// The one row `sql` answers on the test database.
async fn one_row(app: &TestApp, sql: &str) -> sea_orm::QueryResult {
    let statement = sea_orm::Statement::from_string(app.core.db.get_database_backend(), sql);
    app.core.db.query_one_raw(statement).await.unwrap().unwrap()
}

/// A role granted by hand counts on the next request of user `id` (holding `token`), and so
/// does a permission taken away: no kept answer outlives either.
async fn role_changes_by_hand_hold_at_once(app: &TestApp, id: i64, token: &str) {
    let roles = || async { app.get("/rbac/roles", Some(token)).await.status() };
    assert_eq!(roles().await, StatusCode::FORBIDDEN);
    by_hand(
        app,
        &format!("INSERT INTO user_roles (user_id, role_id) SELECT {id}, id FROM roles WHERE name = 'admin'"),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(roles().await, StatusCode::OK);
    }
    by_hand(
        app,
        "DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE name = 'admin')",
    )
    .await;
    assert_eq!(roles().await, StatusCode::FORBIDDEN);
}

/// The sum of `auth_epoch` (PostgreSQL).
async fn auth_epoch(app: &TestApp) -> i64 {
    let row = one_row(app, "SELECT sum(n)::bigint AS epoch FROM auth_epoch").await;
    row.try_get("", "epoch").unwrap()
}

/// A refresh slides its session's expiry without moving the epoch (refreshes are frequent);
/// a kept answer whose session looks expired is read again, so the slid session lives on, and
/// ends when its new expiry passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_slid_by_a_refresh_outlives_its_kept_expiry() {
    let Some(app) = spawn_app_with(Backend::Postgres, |s| {
        s.refresh_token_ttl = 600;
        s.access_token_ttl = 3600;
    })
    .await
    else {
        return;
    };
    let user = app.user().await;
    let (access, refresh) = app.login_pair(&user.email, &user.password).await;
    for _ in 0..2 {
        assert_eq!(app.get("/auth/me", Some(&access)).await.status(), StatusCode::OK);
    }
    app.clock.advance(chrono::TimeDelta::seconds(400));
    let before = auth_epoch(&app).await;
    assert_eq!(app.refresh(&refresh).await.status(), StatusCode::OK);
    assert_eq!(auth_epoch(&app).await, before, "a refresh leaves the epoch alone");

    // Past the expiry the kept answer holds, before the slid one.
    app.clock.advance(chrono::TimeDelta::seconds(400));
    assert_eq!(app.get("/auth/me", Some(&access)).await.status(), StatusCode::OK);
    app.clock.advance(chrono::TimeDelta::seconds(300));
    assert_eq!(
        app.get("/auth/me", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// On a SQLite file a login's writes go through the direct connection, in one transaction on a
/// blocking thread; sea-orm reads them back as it reads its own, and the session works.
#[tokio::test]
async fn a_sqlite_login_writes_what_sea_orm_reads_back() {
    let app = sqlite_app().await;
    let user = app.user().await;
    let agent = format!("{}b", "a".repeat(300));
    let before = chrono::Utc::now();
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", &agent)
        .form(&[
            ("username", user.email.as_str()),
            ("password", crate::helpers::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tokens = body(r).await;

    let live = sessions::live_for_user(&app.core.db, user.id, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(live.len(), 2, "the helper's login and this one");
    let session = live
        .iter()
        .find(|s| s.user_agent.as_deref().is_some_and(|a| a.starts_with("aaa")))
        .unwrap_or_else(|| panic!("this login's session: {live:?}"));
    assert_eq!(
        session.user_agent.as_deref(),
        Some("a".repeat(255).as_str()),
        "cut at 255 characters"
    );
    assert_eq!(session.client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(session.created_at, session.last_used_at);
    assert!(session.created_at >= before - chrono::TimeDelta::seconds(1));
    assert!(session.expires_at > session.created_at && session.revoked_at.is_none());
    let stored = users::find(&app.core.db, user.id).await.unwrap().unwrap();
    assert_eq!(stored.last_login_at, Some(session.created_at));

    // The new access token and refresh token both work.
    let me = app.get("/auth/me", tokens["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
    let refreshed = app
        .post_json(
            "/auth/refresh",
            None,
            &json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

/// On a SQLite file a login reads its throttle counters and its user on the calling thread;
/// the answer is sea-orm's, for an email or a username in any case, for one key or two, for
/// counters that are locked or not, and for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_login_lookup_reads_what_sea_orm_reads() {
    let app = sqlite_app().await;
    let reads = app
        .core
        .direct
        .clone()
        .expect("a SQLite file gets direct lookups");
    login_lookup_reads_what_sea_orm_reads(&app, &reads).await;
}

/// On PostgreSQL a login's lookup is pipelined (decision 109), and answers what sea-orm's
/// statement answers, as on SQLite; the service's own logins take that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_login_lookup_reads_what_sea_orm_reads() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let reads = pipelined_reads(&app);
    login_lookup_reads_what_sea_orm_reads(&app, &reads).await;

    let pipelined = || async {
        scrape(&app).await.sum(
            "pipelined_lookups_total",
            &[("lookup", "login"), ("answer", "read")],
        )
    };
    let before = pipelined().await;
    let user = app.user().await;
    let r = app.login_form(&user.email, "not the password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.login_form(&user.email.to_uppercase(), &user.password).await;
    assert_eq!(r.status(), StatusCode::OK);
    // `/metrics` counts for the whole process (other tests too), so at least.
    assert!(
        pipelined().await >= before + 3.0,
        "the user's and both logins' lookups"
    );
}

/// Compares `reads`' login lookup with sea-orm's for the logins and keys a real login has.
async fn login_lookup_reads_what_sea_orm_reads(app: &TestApp, reads: &Direct) {
    use sea_orm::EntityTrait;
    use users_api::store::entities::login_throttle;
    use users_api::store::throttle;

    let user = app.user().await;
    // `app.user()` registers user<n>@example.com with the username user<n>.
    let username = user.email.split('@').next().unwrap().to_owned();
    // Failed logins: one counter for the account, one for the address; enough of them on the
    // account that it is locked (a lock time and level on the counter).
    // The clock moves past each slow-down, so that all six count (the sixth locks).
    for _ in 0..6 {
        let r = app.login_form(&user.email, "not the password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        app.clock.advance(chrono::TimeDelta::seconds(8));
    }
    let mut keys: Vec<String> = login_throttle::Entity::find()
        .all(&app.core.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.key)
        .collect();
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let locked = login_throttle::Entity::find_by_id(keys[0].clone())
        .one(&app.core.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        locked.locked_until.is_some() && locked.lock_level > 0,
        "{locked:?}"
    );

    let unknown = "a:nobody@example.com".to_owned();
    let logins = [
        user.email.clone(),
        format!("  {}\n", user.email.to_uppercase()),
        username.to_uppercase(),
        "nobody@example.com".to_owned(),
        "nobody".to_owned(),
    ];
    let key_sets = [
        keys.clone(),
        vec![keys[1].clone()],
        vec![unknown.clone(), keys[0].clone()],
        vec![unknown],
        vec![],
    ];
    for login in &logins {
        for key_set in &key_sets {
            let (mut direct_counters, direct_user) = reads
                .login_lookup(key_set, login)
                .await
                .expect("answered directly");
            let mut orm_counters = if key_set.is_empty() {
                Vec::new()
            } else {
                throttle::find(&app.core.db, key_set).await.unwrap()
            };
            let orm_user = users::find_by_login(&app.core.db, login).await.unwrap();
            // Without `direct`: on PostgreSQL the same statement, through the pool.
            let (mut pooled_counters, pooled_user) =
                throttle::find_with_user(&app.core.db, None, key_set, login)
                    .await
                    .unwrap();
            for counters in [&mut direct_counters, &mut orm_counters, &mut pooled_counters] {
                counters.sort_by(|a, b| a.key.cmp(&b.key));
            }
            assert_eq!(direct_counters, orm_counters, "{login:?} {key_set:?}");
            assert_eq!(direct_user, orm_user, "{login:?} {key_set:?}");
            assert_eq!(pooled_counters, orm_counters, "{login:?} {key_set:?}");
            assert_eq!(pooled_user, orm_user, "{login:?} {key_set:?}");
        }
    }
    // What the comparison covered: both users' answers, and counters of every kind.
    let (counters, found) = reads.login_lookup(&keys, &username).await.unwrap();
    assert_eq!(found.map(|u| u.id), Some(user.id));
    assert_eq!(counters.len(), 2);
    assert_eq!(reads.login_lookup(&keys, "nobody").await.unwrap().1, None);
    // More than two keys is not a login's lookup: left to sea-orm.
    assert!(
        reads
            .login_lookup(&[keys[0].clone(), keys[1].clone(), "a:x".into()], "x")
            .await
            .is_none()
    );
}

/// On a SQLite file a registration's user and default roles are one transaction on the direct
/// writer; the row is the one sea-orm's insert writes, byte for byte, and a taken email or
/// username is told apart and writes nothing, as through sea-orm.
#[tokio::test]
async fn a_sqlite_registration_writes_what_sea_orm_writes() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    use users_api::store::entities::user::{Entity as Users, Model as User};
    use users_api::store::rbac;
    use users_api::store::users::{NewUser, Taken};

    let app = sqlite_app().await;
    let direct = app
        .core
        .sqlite_direct()
        .expect("a SQLite file gets direct writes")
        .clone();
    let now = chrono::Utc::now();
    let new = |n: &str| NewUser {
        email: format!("Mixed.{n}@Example.ORG"),
        username: Some(format!("Name_{n}")),
        full_name: Some("Åse Ørn".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        is_active: false,
        is_admin: true,
    };
    let written = users::insert_with_default_roles(&app.core.db, Some(&direct), new("d"), now)
        .await
        .unwrap()
        .unwrap();
    let by_orm = users::insert_with_default_roles(&app.core.db, None, new("o"), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        users::find(&app.core.db, written.id).await.unwrap().as_ref(),
        Some(&written)
    );
    assert_eq!(written.email_lower, "mixed.d@example.org");
    assert_eq!(written.username_lower.as_deref(), Some("name_d"));
    let same_but_names = User {
        id: by_orm.id,
        email: by_orm.email.clone(),
        email_lower: by_orm.email_lower.clone(),
        username: by_orm.username.clone(),
        username_lower: by_orm.username_lower.clone(),
        ..written.clone()
    };
    assert_eq!(same_but_names, by_orm);
    // As stored: every column's value and type, beside the names.
    let other = second_process(&direct);
    let stored = |id: i64| -> Vec<String> {
        other
            .query_row(
                "SELECT quote(full_name), quote(password_hash), quote(is_active), quote(is_admin), \
                        quote(created_at), quote(updated_at), quote(last_login_at), quote(bio), \
                        quote(preferences), quote(birth_date) FROM users WHERE id = ?",
                [id],
                |row| (0..10).map(|i| row.get(i)).collect(),
            )
            .unwrap()
    };
    assert_eq!(stored(written.id), stored(by_orm.id));
    let granted = rbac::resolve(&app.core.db, written.id).await.unwrap();
    assert!(!granted.0.is_empty(), "the default roles");
    assert_eq!(granted, rbac::resolve(&app.core.db, by_orm.id).await.unwrap());

    let count = || async { Users::find().count(&app.core.db).await.unwrap() };
    let before = count().await;
    for (to_write, taken) in [
        (
            NewUser {
                username: None,
                ..new("D")
            },
            Taken::Email,
        ),
        (
            NewUser {
                email: "fresh@example.org".into(),
                ..new("D")
            },
            Taken::Username,
        ),
    ] {
        let answer =
            users::insert_with_default_roles(&app.core.db, Some(&direct), to_write.clone(), now).await;
        assert_eq!(answer.unwrap().err(), Some(taken));
        let answer = users::insert_with_default_roles(&app.core.db, None, to_write, now).await;
        assert_eq!(answer.unwrap().err(), Some(taken));
    }
    assert_eq!(count().await, before, "a taken name writes nothing");
}
