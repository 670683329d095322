//! The Flask generation's API under `/api`: every curl command of seeds 000–002, the
//! tutorial's own pytest cases, shared users and tokens, and legacy password hashes.

use reqwest::StatusCode;
use serde_json::{Value, json};
use users_api::store::users::{self, NewUser};

use crate::helpers::{TestApp, body};

const FIXTURES: &str = include_str!("fixtures/legacy_hashes.json");

async fn post(app: &TestApp, path: &str, payload: &Value) -> (StatusCode, Value) {
    let r = app.post_json(path, None, payload).await;
    (r.status(), body(r).await)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let r = app.get(path, Some(token)).await;
    (r.status(), body(r).await)
}

fn token_of(v: &Value) -> String {
    v["access_token"].as_str().expect("access_token").to_owned()
}

backend_test!(
    async fn seed_000_tutorial_curls_get_the_documented_responses(app) {
        // Part 1
        let (status, v) = (app.get("/api/test", None).await.status(), body(app.get("/api/test", None).await).await);
        assert_eq!((status, v), (StatusCode::OK, json!({"message": "Welcome to the User Management Microservice!"})));
        // Part 2
        let (status, v) = post(&app, "/api/register", &json!({"username": "testuser", "email": "test@example.com", "password": "testpass"})).await;
        assert_eq!((status, v), (StatusCode::CREATED, json!({"id": 1, "username": "testuser", "email": "test@example.com"})));
        // Part 3
        let (status, v) = post(&app, "/api/login", &json!({"username": "testuser", "password": "testpass"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["access_token"]);
        let token = token_of(&v);
        let admin = app.admin().await; // listing everyone takes `user:read`
        let (status, v) = get(&app, "/api/users", &admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v[0], json!({"id": 1, "username": "testuser", "email": "test@example.com"}));
        let (status, v) = get(&app, "/api/users/1", &token).await;
        assert_eq!((status, v), (StatusCode::OK, json!({"id": 1, "username": "testuser", "email": "test@example.com"})));
        let r = app.put_json("/api/users/1", Some(&token), &json!({"username": "updateduser"})).await;
        assert_eq!((r.status(), body(r).await), (StatusCode::OK, json!({"id": 1, "username": "updateduser", "email": "test@example.com"})));
        // Part 4
        let r = app.get("/api/nonexistent", None).await;
        assert_eq!(
            (r.status(), body(r).await),
            (StatusCode::NOT_FOUND, json!({"error": "Not Found", "message": "The requested resource was not found"}))
        );
        let (status, v) = post(&app, "/api/register", &json!({"username": "testuser", "email": "invalid-email", "password": "testpass"})).await;
        assert_eq!(
            (status, v),
            (StatusCode::BAD_REQUEST, json!({"error": "Validation Error", "messages": {"email": ["Not a valid email address."]}}))
        );
        // Part 5
        let (status, v) = get(&app, "/api/protected", &token).await;
        assert_eq!((status, v), (StatusCode::OK, json!({"message": "Hello, updateduser!"})));
        // Part 3, last: delete.
        let r = app.delete("/api/users/1", Some(&token)).await;
        assert_eq!((r.status(), body(r).await), (StatusCode::OK, json!({"message": "User deleted successfully"})));
        let (status, v) = get(&app, "/api/users/1", &admin.token).await;
        assert_eq!((status, v["error"].clone()), (StatusCode::NOT_FOUND, json!("Not Found")));
    }
);

backend_test!(
    async fn seed_002_uservault_readme_curls_get_the_documented_responses(app) {
        let (status, v) = post(&app, "/api/users", &json!({"username": "testuser", "email": "test@example.com", "password": "testpass"})).await;
        assert_eq!((status, v), (StatusCode::CREATED, json!({"id": 1, "username": "testuser", "email": "test@example.com"})));
        let (status, v) = post(&app, "/api/login", &json!({"username": "testuser", "password": "testpass"})).await;
        assert_eq!(status, StatusCode::OK);
        let token = token_of(&v);
        let admin = app.admin().await;
        let (_, all) = get(&app, "/api/users", &admin.token).await;
        assert!(all.as_array().unwrap().contains(&json!({"id": 1, "username": "testuser", "email": "test@example.com"})));
        let (status, v) = get(&app, "/api/users/1", &token).await;
        assert_eq!((status, v), (StatusCode::OK, json!({"id": 1, "username": "testuser", "email": "test@example.com"})));
        let r = app.put_json("/api/users/1", Some(&token), &json!({"username": "updateduser", "email": "updated@example.com"})).await;
        assert_eq!((r.status(), body(r).await), (StatusCode::OK, json!({"id": 1, "username": "updateduser", "email": "updated@example.com"})));
        let r = app.delete("/api/users/1", Some(&token)).await;
        assert_eq!((r.status(), body(r).await), (StatusCode::OK, json!({"message": "User deleted successfully"})));
    }
);

// The tutorial registers the password `password`, which the default policy refuses as one of
// the most common; its tests run against a service configured to accept it
// (PASSWORD_DENY_COMMON=false), as a deployment that must keep such clients working would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_refuses_the_tutorials_password_with_a_clear_message() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let (status, v) = post(
        &app,
        "/api/register",
        &json!({"username": "testuser", "email": "test@example.com", "password": "password"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["messages"]["password"][0],
        "This password is one of the most common passwords; choose another."
    );
}

backend_test!(
    settings = |s: &mut users_api::Settings| s.password_deny_common = false;
    async fn the_tutorials_pytest_cases_pass(app) {
        // test_register_user
        let (status, v) = post(&app, "/api/register", &json!({"username": "testuser", "email": "test@example.com", "password": "password"})).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(v.get("id").is_some());
        assert_eq!((v["username"].clone(), v["email"].clone()), (json!("testuser"), json!("test@example.com")));
        // test_login_user (the login body carries an extra `email`)
        let login = json!({"username": "testuser", "email": "test@example.com", "password": "password"});
        let (status, v) = post(&app, "/api/login", &login).await;
        assert_eq!(status, StatusCode::OK);
        assert!(v.get("access_token").is_some());
        let (status, v) = post(&app, "/api/login", &json!({"username": "testuser", "email": "test@example.com", "password": "wrongpassword"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(v.get("error").is_some());
        // test_protected_route
        let (_, v) = post(&app, "/api/login", &login).await;
        let (status, v) = get(&app, "/api/protected", &token_of(&v)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(v.get("message").is_some());
    }
);

backend_test!(
    async fn compat_errors_keep_the_flask_shapes(app) {
        post(&app, "/api/register", &json!({"username": "testuser", "email": "test@example.com", "password": "testpass"})).await;
        let (status, v) = post(&app, "/api/register", &json!({"username": "TESTUSER", "email": "other@example.com", "password": "testpass"})).await;
        assert_eq!((status, v), (StatusCode::BAD_REQUEST, json!({"error": "Username already exists"})));
        let (status, v) = post(&app, "/api/register", &json!({"username": "other", "email": "Test@Example.com", "password": "testpass"})).await;
        assert_eq!((status, v), (StatusCode::BAD_REQUEST, json!({"error": "Email already exists"})));
        let (status, v) = post(&app, "/api/register", &json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            v["messages"],
            json!({"email": ["Missing data for required field."], "password": ["Missing data for required field."], "username": ["Missing data for required field."]})
        );
        let (_, v) = post(&app, "/api/register", &json!({"username": "abc", "email": "a@b.co", "password": "short"})).await;
        assert_eq!(v["messages"], json!({"password": ["Shorter than minimum length 8."]}));
        let (status, v) = post(&app, "/api/login", &json!({"username": "testuser", "password": "nope-nope"})).await;
        assert_eq!((status, v), (StatusCode::UNAUTHORIZED, json!({"error": "Invalid credentials"})));
        let (status, v) = post(&app, "/api/login", &json!({"username": "nobody", "password": "nope-nope"})).await;
        assert_eq!((status, v), (StatusCode::UNAUTHORIZED, json!({"error": "Invalid credentials"})));
        let r = app.get("/api/protected", None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(r).await["error"], "Unauthorized");
        let r = app.get("/api/users/abc", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "Flask's <int:id> converter");
        let r = app.client.patch(app.url("/api/test")).send().await.unwrap();
        assert_eq!((r.status(), body(r).await["error"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!("Method Not Allowed")));
        let r = app.client.post(app.url("/api/register")).header("content-type", "application/json").body("{oops").send().await.unwrap();
        assert_eq!((r.status(), body(r).await["error"].clone()), (StatusCode::BAD_REQUEST, json!("Validation Error")));
    }
);

backend_test!(
    async fn users_and_tokens_are_shared_between_the_surfaces(app) {
        // Registered on the compat API, logged in on the native one (by username or email).
        post(&app, "/api/register", &json!({"username": "flask", "email": "flask@example.com", "password": "testpass"})).await;
        let native = app.login("flask", "testpass").await;
        app.login("flask@example.com", "testpass").await;
        let (status, v) = get(&app, "/api/protected", &native).await;
        assert_eq!((status, v), (StatusCode::OK, json!({"message": "Hello, flask!"})));
        // Registered on the native API without a username: the email logs in on /api/login.
        app.post_json("/auth/register", None, &json!({"email": "fast@example.com", "password": "SecurePassword123!"})).await;
        let (status, v) = post(&app, "/api/login", &json!({"username": "fast@example.com", "password": "SecurePassword123!"})).await;
        assert_eq!(status, StatusCode::OK);
        let compat = token_of(&v);
        assert_eq!(body(app.get("/auth/me", Some(&compat)).await).await["email"], "fast@example.com");
        let (_, v) = get(&app, "/api/protected", &compat).await;
        assert_eq!(v, json!({"message": "Hello, fast@example.com!"}));
        // A compat token is a real session: logging out on the native API ends it.
        assert_eq!(app.post("/auth/logout", Some(&compat)).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(get(&app, "/api/protected", &compat).await.0, StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    async fn compat_routes_apply_the_same_authorization(app) {
        let a = app.user().await;
        let b = app.user().await;
        let other = format!("/api/users/{}", b.id);
        assert_eq!(get(&app, &other, &a.token).await.0, StatusCode::FORBIDDEN);
        let r = app.put_json(&other, Some(&a.token), &json!({"username": "hijacked"})).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.delete(&other, Some(&a.token)).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(get(&app, "/api/users", &a.token).await.0, StatusCode::FORBIDDEN);
        let admin = app.admin().await;
        assert_eq!(get(&app, &other, &admin.token).await.0, StatusCode::OK);
        let r = app.put_json(&other, Some(&admin.token), &json!({"email": "b-new@example.com"})).await;
        assert_eq!(body(r).await["email"], "b-new@example.com");
        // Self-service password change without a current password, as the seed allows; other
        // sessions end.
        let r = app.put_json(&format!("/api/users/{}", a.id), Some(&a.token), &json!({"password": "another-pass-1"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let (status, _) = post(&app, "/api/login", &json!({"username": a.email, "password": "another-pass-1"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.delete(&format!("/api/users/{}", admin.id), Some(&admin.token)).await.status(), StatusCode::FORBIDDEN);
    }
);

/// Puts a user with a given stored hash straight into the database (as an import would).
async fn user_with_hash(app: &TestApp, username: &str, hash: &str) {
    let new = NewUser {
        email: format!("{username}@example.com"),
        username: Some(username.to_owned()),
        full_name: None,
        password_hash: hash.to_owned(),
        is_active: true,
        is_admin: false,
    };
    users::insert(&app.core.db, new, chrono::Utc::now())
        .await
        .unwrap();
}

async fn stored_hash(app: &TestApp, username: &str) -> String {
    users::find_by_login(&app.core.db, username)
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

async fn logs_in_and_upgrades(app: &TestApp, username: &str, password: &str, hash: &str, try_wrong: bool) {
    user_with_hash(app, username, hash).await;
    if try_wrong {
        let (status, _) = post(
            app,
            "/api/login",
            &json!({"username": username, "password": "wrong-password"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{hash}");
        assert_eq!(
            stored_hash(app, username).await,
            hash,
            "a failed login changes nothing"
        );
    }
    let (status, _) = post(
        app,
        "/api/login",
        &json!({"username": username, "password": password}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hash}");
    let upgraded = stored_hash(app, username).await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    // The new hash works, on both surfaces.
    app.login(username, password).await;
}

backend_test!(
    async fn legacy_hashes_log_in_and_become_argon2id(app) {
        let fixtures: Vec<Value> = serde_json::from_str(FIXTURES).unwrap();
        // One of each kind per backend; every fixture runs in the SQLite test below.
        for (i, scheme) in ["pbkdf2", "scrypt", "bcrypt"].iter().enumerate() {
            let f = fixtures.iter().find(|f| f["scheme"] == *scheme).unwrap();
            logs_in_and_upgrades(&app, &format!("legacy{i}"), f["password"].as_str().unwrap(), f["hash"].as_str().unwrap(), true).await;
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_legacy_fixture_verifies_and_is_rehashed() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let fixtures: Vec<Value> = serde_json::from_str(FIXTURES).unwrap();
    assert_eq!(fixtures.len(), 28);
    for (i, f) in fixtures.iter().enumerate() {
        logs_in_and_upgrades(
            &app,
            &format!("fixture{i}"),
            f["password"].as_str().unwrap(),
            f["hash"].as_str().unwrap(),
            false,
        )
        .await;
    }
}
