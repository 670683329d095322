//! `users-api import` from UserVault (Flask, SQLite) and QuizApp (FastAPI, PostgreSQL)
//! databases: hashes are kept, logins work with the original passwords, reruns import nothing.

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use users_api::import::{self, Format};

use crate::helpers::{TestApp, body};

const FIXTURES: &str = include_str!("fixtures/legacy_hashes.json");

fn fixture(scheme: &str, password: &str) -> String {
    let all: Vec<Value> = serde_json::from_str(FIXTURES).unwrap();
    all.iter()
        .find(|f| f["scheme"] == scheme && f["password"] == password)
        .unwrap_or_else(|| panic!("no {scheme} fixture for {password}"))["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A SQLite file shaped exactly like UserVault's `db.create_all()` of its `User` model.
pub async fn uservault_fixture() -> (String, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("uservault-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = Database::connect(&url).await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE user (\n\tid INTEGER NOT NULL, \n\tusername VARCHAR(80) NOT NULL, \n\temail VARCHAR(120) NOT NULL, \
         \n\tpassword_hash VARCHAR(128) NOT NULL, \n\tPRIMARY KEY (id), \n\tUNIQUE (username), \n\tUNIQUE (email)\n)",
    )
    .await
    .unwrap();
    let rows = [
        ("testuser", "test@example.com", fixture("pbkdf2", "testpass")),
        (
            "alice",
            "alice@example.com",
            fixture("scrypt", "secretpassword123"),
        ),
        ("bob", "bob@example.com", fixture("bcrypt", "SecurePassword123!")),
        ("carol", "not-an-email", fixture("pbkdf2", "testpass")),
        ("Dave Smith", "dave@example.com", fixture("pbkdf2", "testpass")),
        ("testuser2", "TEST@example.com", fixture("pbkdf2", "testpass")),
        (
            "erin",
            "erin@example.com",
            "md5$abcdef$0123456789abcdef".to_owned(),
        ),
    ];
    for (i, (username, email, hash)) in rows.iter().enumerate() {
        db.execute_unprepared(&format!(
            "INSERT INTO user (id, username, email, password_hash) VALUES ({}, '{username}', '{email}', '{hash}')",
            i + 1
        ))
        .await
        .unwrap();
    }
    db.close().await.unwrap();
    (format!("sqlite://{}", path.display()), path)
}

async fn user_count(app: &TestApp, admin: &str) -> String {
    app.get("/users/", Some(admin)).await.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn compat_login(app: &TestApp, username: &str, password: &str) -> StatusCode {
    app.post_json(
        "/api/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
    .status()
}

backend_test!(
    async fn a_uservault_database_imports_end_to_end(app) {
        let admin = app.admin().await;
        let (source, path) = uservault_fixture().await;
        let none = |_: u64, _: u64| {};

        let (format, dry) = import::run(&app.core, &source, None, true, &none).await.unwrap();
        assert_eq!(format, Format::UserVault);
        assert_eq!((dry.read, dry.imported, dry.skipped.len()), (7, 3, 4));
        assert_eq!(user_count(&app, &admin.token).await, "1", "a dry run writes nothing");

        let (_, report) = import::run(&app.core, &source, Some(Format::UserVault), false, &none).await.unwrap();
        assert_eq!(report.imported, 3);
        let reasons: Vec<&str> = report.skipped.iter().map(|(_, why)| why.as_str()).collect();
        assert!(reasons[0].starts_with("invalid email"), "{reasons:?}");
        assert!(reasons[1].contains("cannot be used"), "{reasons:?}");
        assert!(reasons[2].contains("already exists"), "{reasons:?}");
        assert!(reasons[3].contains("unsupported password hash"), "{reasons:?}");
        assert_eq!(user_count(&app, &admin.token).await, "4");

        // The original passwords work, on both surfaces, and the users got the default role.
        assert_eq!(compat_login(&app, "testuser", "testpass").await, StatusCode::OK);
        assert_eq!(compat_login(&app, "alice", "secretpassword123").await, StatusCode::OK);
        let bob = app.login("bob@example.com", "SecurePassword123!").await;
        let mine = body(app.get("/rbac/my-permissions", Some(&bob)).await).await;
        assert_eq!(mine["roles"], json!(["user"]));
        let bob_id = body(app.get("/auth/me", Some(&bob)).await).await["id"].as_i64().unwrap();
        let me = body(app.get(&format!("/api/users/{bob_id}"), Some(&bob)).await).await;
        assert_eq!(me["username"], "bob");

        // Running it again imports nothing new.
        let (_, again) = import::run(&app.core, &source, None, false, &none).await.unwrap();
        assert_eq!((again.imported, again.skipped.len()), (0, 7));
        assert_eq!(user_count(&app, &admin.token).await, "4");
        let _ = std::fs::remove_file(path);
    }
);

/// A `users` table as seed 004's first migration plus profile fields define it.
const QUIZAPP_004: &str = "CREATE TABLE users (id SERIAL PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, \
    full_name VARCHAR(255), password_hash VARCHAR(255) NOT NULL, is_active BOOLEAN NOT NULL, is_admin BOOLEAN NOT NULL, \
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, updated_at TIMESTAMP WITH TIME ZONE NOT NULL, bio TEXT, \
    avatar_url VARCHAR(500), location VARCHAR(255), website VARCHAR(500), phone_number VARCHAR(20), birth_date DATE, \
    preferences JSON)";

backend_test!(
    async fn a_quizapp_postgres_database_imports_with_profiles_and_flags(app) {
        let Ok(server) = std::env::var("TEST_POSTGRES_URL") else {
            assert_ne!(std::env::var("REQUIRE_ALL_BACKENDS").as_deref(), Ok("1"), "TEST_POSTGRES_URL is not set");
            return;
        };
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("quizapp_{}", uuid::Uuid::new_v4().simple());
        let admin_db = Database::connect(format!("{server}/postgres")).await.unwrap();
        admin_db.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let source_url = format!("{server}/{name}");
        let source = Database::connect(&source_url).await.unwrap();
        source.execute_unprepared(QUIZAPP_004).await.unwrap();
        let hash = fixture("bcrypt", "SecurePassword123!");
        source
            .execute_unprepared(&format!(
                "INSERT INTO users (email, full_name, password_hash, is_active, is_admin, created_at, updated_at, bio, \
                 website, phone_number, birth_date, preferences) VALUES \
                 ('alice@example.com', 'Alice Johnson', '{hash}', true, true, '2024-01-02 03:04:05+00', now(), \
                  'I am a software developer', 'https://alice-dev.com', '+1-555-0123', '1990-05-15', \
                  '{{\"theme\": \"dark\", \"privacy_public_profile\": true}}'), \
                 ('paused@example.com', NULL, '{hash}', false, false, now(), now(), NULL, 'not a url', NULL, NULL, NULL)"
            ))
            .await
            .unwrap();
        source.close().await.unwrap();

        let none = |_: u64, _: u64| {};
        let (format, report) = import::run(&app.core, &source_url, None, false, &none).await.unwrap();
        assert_eq!(format, Format::QuizApp);
        assert_eq!((report.imported, report.skipped.len(), report.dropped_fields), (2, 0, 1));

        let token = app.login("alice@example.com", "SecurePassword123!").await;
        let profile = body(app.get("/profile/me", Some(&token)).await).await;
        assert_eq!(profile["full_name"], "Alice Johnson");
        assert_eq!(profile["phone_number"], "+1-555-0123");
        assert_eq!(profile["birth_date"], "1990-05-15");
        assert_eq!(profile["preferences"]["theme"], "dark");
        let me = body(app.get("/auth/me", Some(&token)).await).await;
        assert_eq!(me["is_admin"], true);
        assert!(me["created_at"].as_str().unwrap().starts_with("2024-01-02T03:04:05"));
        // The inactive user stays inactive.
        assert_eq!(app.login_form("paused@example.com", "SecurePassword123!").await.status(), StatusCode::FORBIDDEN);

        admin_db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_column_names_are_understood() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("quizapp003-{}.db", uuid::Uuid::new_v4().simple()));
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    db.execute_unprepared(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(255) UNIQUE, name VARCHAR(255), \
         hashed_password VARCHAR(255) NOT NULL, is_active BOOLEAN NOT NULL, is_superuser BOOLEAN NOT NULL, \
         phone VARCHAR(20), preferences JSON, created_at DATETIME, updated_at DATETIME)",
    )
    .await
    .unwrap();
    let hash = fixture("bcrypt", "secretpassword123");
    db.execute_unprepared(&format!(
        "INSERT INTO users VALUES (1, 'alice@example.com', 'Alice Johnson', '{hash}', 1, 0, '+1-555-0123', '{{}}', \
         '2025-03-01 12:00:00.000000', '2025-03-01 12:00:00.000000')"
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let source = format!("sqlite://{}", path.display());
    let (format, report) = import::run(&app.core, &source, Some(Format::QuizApp), false, &|_, _| {})
        .await
        .unwrap();
    assert_eq!((format, report.imported), (Format::QuizApp, 1));
    let token = app.login("alice@example.com", "secretpassword123").await;
    let profile = body(app.get("/profile/me", Some(&token)).await).await;
    assert_eq!(
        (profile["full_name"].clone(), profile["phone_number"].clone()),
        (json!("Alice Johnson"), json!("+1-555-0123"))
    );
    let wrong = import::run(&app.core, &source, Some(Format::UserVault), false, &|_, _| {})
        .await
        .unwrap_err();
    assert!(wrong.to_string().contains("no `user` table"), "{wrong}");
    let _ = std::fs::remove_file(path);
}
