use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, body};

backend_test!(
    async fn registering_returns_201_and_the_user_without_secrets(app) {
        let response = app
            .post_json(
                "/auth/register",
                None,
                &json!({"email": "Alice@Example.com", "password": "SecurePassword123!", "full_name": "Alice Johnson", "username": "alice"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let user = body(response).await;
        assert!(user["id"].as_i64().is_some_and(|id| id > 0));
        assert_eq!(user["email"], "Alice@Example.com");
        assert_eq!(user["username"], "alice");
        assert_eq!(user["full_name"], "Alice Johnson");
        assert_eq!(user["is_active"], true);
        assert_eq!(user["is_admin"], false);
        assert!(user["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(user["last_login_at"].is_null());
        let keys: Vec<&String> = user.as_object().expect("object").keys().collect();
        assert!(!keys.iter().any(|k| k.contains("password")), "leaked: {keys:?}");
    }
);

backend_test!(
    async fn name_is_accepted_as_an_alias_of_full_name(app) {
        let response = app
            .post_json("/auth/register", None, &json!({"email": "bob@example.com", "name": "Bob", "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(body(response).await["full_name"], "Bob");
    }
);

backend_test!(
    async fn duplicate_email_in_any_letter_case_is_409(app) {
        let first = app.post_json("/auth/register", None, &json!({"email": "carol@example.com", "password": PASSWORD})).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let again = app.post_json("/auth/register", None, &json!({"email": "CAROL@example.COM", "password": PASSWORD})).await;
        assert_eq!(again.status(), StatusCode::CONFLICT);
        assert_eq!(body(again).await["detail"], "A user with this email already exists");
    }
);

backend_test!(
    async fn duplicate_username_in_any_letter_case_is_409(app) {
        let first = app
            .post_json("/auth/register", None, &json!({"email": "d1@example.com", "username": "Dave", "password": PASSWORD}))
            .await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let again = app
            .post_json("/auth/register", None, &json!({"email": "d2@example.com", "username": "dAVE", "password": PASSWORD}))
            .await;
        assert_eq!(again.status(), StatusCode::CONFLICT);
        assert_eq!(body(again).await["detail"], "A user with this username already exists");
    }
);

fn failing_fields(body: &Value) -> Vec<String> {
    body["detail"]
        .as_array()
        .expect("a list of errors")
        .iter()
        .map(|e| {
            e["loc"]
                .as_array()
                .expect("loc")
                .iter()
                .map(|p| p.as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

backend_test!(
    async fn registration_lists_every_failing_field(app) {
        let response = app
            .post_json("/auth/register", None, &json!({"email": "not-an-email", "password": "short", "username": "x"}))
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let errors = body(response).await;
        assert_eq!(failing_fields(&errors), ["body.email", "body.username", "body.password"]);
        for item in errors["detail"].as_array().expect("list") {
            assert!(item["msg"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(item["type"].as_str().is_some_and(|t| !t.is_empty()));
        }

        let missing = app.post_json("/auth/register", None, &json!({})).await;
        assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(failing_fields(&body(missing).await), ["body.email", "body.password"]);
    }
);

backend_test!(
    async fn password_policy_refuses_short_long_and_identity_passwords(app) {
        for (password, email) in [
            ("1234567", "p1@example.com"),
            (&*"x".repeat(129), "p2@example.com"),
            ("P3@Example.com", "p3@example.com"),
        ] {
            let response = app.post_json("/auth/register", None, &json!({"email": email, "password": password})).await;
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{password} accepted");
            assert_eq!(failing_fields(&body(response).await), ["body.password"]);
        }
        let same_as_username = app
            .post_json("/auth/register", None, &json!({"email": "p4@example.com", "username": "longusername", "password": "LongUserName"}))
            .await;
        assert_eq!(same_as_username.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let ok = app.post_json("/auth/register", None, &json!({"email": "p5@example.com", "password": "x".repeat(128)})).await;
        assert_eq!(ok.status(), StatusCode::CREATED);
    }
);

backend_test!(
    async fn login_with_the_password_form_returns_a_bearer_token(app) {
        app.post_json("/auth/register", None, &json!({"email": "alice@example.com", "password": "secretpassword123"})).await;
        let response = app.login_form("alice@example.com", "secretpassword123").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let tokens = body(response).await;
        assert_eq!(tokens["token_type"], "bearer");
        assert_eq!(tokens["expires_in"], 900);
        let token = tokens["access_token"].as_str().expect("token");
        let me = body(app.get("/auth/me", Some(token)).await).await;
        assert_eq!(me["email"], "alice@example.com");
        assert!(me["last_login_at"].is_string());
    }
);

backend_test!(
    async fn login_accepts_json_and_the_username_in_any_case(app) {
        app.post_json("/auth/register", None, &json!({"email": "e@example.com", "username": "Erin", "password": PASSWORD})).await;
        let response = app.post_json("/auth/login", None, &json!({"username": "erin", "password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let by_email = app.post_json("/auth/login", None, &json!({"username": "E@EXAMPLE.COM", "password": PASSWORD})).await;
        assert_eq!(by_email.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn unknown_user_and_wrong_password_get_the_same_401(app) {
        app.post_json("/auth/register", None, &json!({"email": "f@example.com", "password": PASSWORD})).await;
        let wrong = app.login_form("f@example.com", "not-the-password").await;
        let unknown = app.login_form("nobody@example.com", PASSWORD).await;
        for response in [wrong, unknown] {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            assert_eq!(body(response).await, json!({"detail": "Incorrect username or password"}));
        }
    }
);

backend_test!(
    async fn login_without_fields_or_with_the_wrong_content_type_is_a_4xx(app) {
        let empty = app.client.post(app.url("/auth/login")).form(&[("username", "")]).send().await.expect("sent");
        assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(failing_fields(&body(empty).await), ["body.username", "body.password"]);
        let text = app
            .client
            .post(app.url("/auth/login"))
            .header("content-type", "text/plain")
            .body("username=a&password=b")
            .send()
            .await
            .expect("sent");
        assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
);

backend_test!(
    async fn deactivated_users_cannot_log_in(app) {
        let admin = app.admin().await;
        let user = app.user().await;
        let response = app.put_json(&format!("/users/{}", user.id), Some(&admin.token), &json!({"is_active": false})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let login = app.login_form(&user.email, &user.password).await;
        assert_eq!(login.status(), StatusCode::FORBIDDEN);
        assert_eq!(body(login).await["detail"], "Inactive user");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_parallel_registrations_of_one_email_create_one_user() {
    for backend in [
        crate::helpers::Backend::Sqlite,
        crate::helpers::Backend::Postgres,
        crate::helpers::Backend::Mysql,
    ] {
        let Some(app) = crate::helpers::spawn_app(backend).await else {
            continue;
        };
        let emails = [
            "race@example.com",
            "RACE@example.com",
            "Race@Example.com",
            "race@EXAMPLE.com",
            "rAce@example.com",
            "raCe@example.com",
            "racE@example.com",
            "RACE@EXAMPLE.COM",
            "race@example.COM",
            "Race@example.com",
            "rACE@example.com",
            "RaCe@ExAmPlE.cOm",
        ];
        let bodies: Vec<Value> = emails
            .iter()
            .map(|email| json!({"email": email, "password": PASSWORD}))
            .collect();
        let requests = bodies.iter().map(|b| app.post_json("/auth/register", None, b));
        let statuses: Vec<StatusCode> = futures::future::join_all(requests)
            .await
            .iter()
            .map(|r| r.status())
            .collect();
        let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((created, conflicts), (1, 11), "{backend:?}: {statuses:?}");
        let admin = app.admin().await;
        let list = app.get("/users/?search=race", Some(&admin.token)).await;
        assert_eq!(list.headers()["x-total-count"], "1", "{backend:?}");
    }
}
