//! Bad input never gets a 500: every malformed request is answered with a clear 4xx JSON body.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::body;

backend_test!(
    async fn malformed_json_is_400_and_changes_nothing(app) {
        for raw in ["{", "{\"email\": }", "not json", "{\"email\":\"a@b.co\"} trailing"] {
            let response = app
                .client
                .post(app.url("/auth/register"))
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{raw}");
            assert!(body(response).await["detail"].as_str().unwrap().starts_with("Malformed JSON"));
        }
        let admin = app.admin().await;
        assert_eq!(app.get("/users/", Some(&admin.token)).await.headers()["x-total-count"], "1");
    }
);

backend_test!(
    async fn wrong_types_and_shapes_are_422_at_the_field(app) {
        let response = app.post_json("/auth/register", None, &json!({"email": 42, "password": "long-enough"})).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(response).await["detail"][0]["loc"], json!(["body", "email"]));
        for shape in [json!([1, 2]), json!("text"), json!(null)] {
            let response = app.post_json("/auth/register", None, &shape).await;
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{shape}");
        }
        let empty = app.client.post(app.url("/auth/register")).header("content-type", "application/json").send().await.unwrap();
        assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
);

backend_test!(
    async fn wrong_content_type_is_415(app) {
        let response = app
            .client
            .post(app.url("/auth/register"))
            .header("content-type", "text/plain")
            .body(r#"{"email":"a@b.co","password":"long-enough"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(body(response).await["detail"].as_str().unwrap().contains("application/json"));
    }
);

backend_test!(
    async fn huge_bodies_are_413(app) {
        let big = format!(r#"{{"email":"a@b.co","password":"{}"}}"#, "x".repeat(200_000));
        let response = app
            .client
            .post(app.url("/auth/register"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body(response).await, json!({"detail": "Request body is too large"}));
    }
);

backend_test!(
    async fn bad_ids_and_paging_parameters_are_422(app) {
        let admin = app.admin().await;
        let t = Some(admin.token.as_str());
        for path in ["/users/abc", "/users/1.5", "/users/99999999999999999999999"] {
            let response = app.get(path, t).await;
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
            assert_eq!(body(response).await["detail"][0]["loc"][0], "path");
        }
        // Control characters (a NUL above all, which PostgreSQL and SQLite's search index
        // refuse) in a search term or a role filter.
        let trimmed = app.get("/users/?search=%20example.com%0A", t).await;
        assert_eq!(trimmed.status(), StatusCode::OK, "search terms are trimmed first");
        for query in ["search=%00%00%00", "search=ab%00cd", "search=tab%09bed", "role=ad%00min"] {
            let response = app.get(&format!("/users/?{query}"), t).await;
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            let detail = body(response).await["detail"][0].clone();
            assert_eq!(detail["loc"][0], "query", "{query}");
            assert_eq!(detail["loc"][1], query.split('=').next().unwrap(), "{query}");
        }
        for query in ["limit=-1", "limit=0", "limit=1001", "limit=99999999999999999999", "limit=abc", "skip=-5", "sort=password_hash", "active_only=maybe"] {
            let response = app.get(&format!("/users/?{query}"), t).await;
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            assert_eq!(body(response).await["detail"][0]["loc"][0], "query", "{query}");
        }
        let ok = app.get("/users/?limit=1000&skip=0", t).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let far = app.get("/users/?skip=9223372036854775807", t).await;
        assert_eq!(far.status(), StatusCode::OK);
        assert_eq!(body(far).await, json!([]));
    }
);

backend_test!(
    async fn unknown_routes_are_404_and_wrong_methods_405_in_json(app) {
        let response = app.get("/no/such/thing", None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(response).await, json!({"detail": "Not Found"}));
        let response = app.client.patch(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body(response).await, json!({"detail": "Method Not Allowed"}));
    }
);

backend_test!(
    async fn trailing_slashes_reach_the_same_route(app) {
        let admin = app.admin().await;
        assert_eq!(app.get("/users", Some(&admin.token)).await.status(), StatusCode::OK);
        assert_eq!(app.get("/users/", Some(&admin.token)).await.status(), StatusCode::OK);
        assert_eq!(app.get("/healthz/", None).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn control_characters_in_logins_and_free_text_are_4xx_and_change_nothing(app) {
        let admin = app.admin().await;
        let user = app.user().await;
        // A NUL in a login names nobody (PostgreSQL would refuse it in a query).
        let r = app.login_form("nobody\u{0}@example.com", "whatever-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = app
            .post_json("/auth/login", None, &json!({"username": format!("{}\u{0}", user.email), "password": user.password}))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // Logins are trimmed: a trailing line break is no control character in them.
        let r = app
            .post_json("/auth/login", None, &json!({"username": format!("{}\n", user.email), "password": user.password}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = app
            .post_json("/api/login", None, &json!({"username": "a\u{0}b", "password": "whatever-password"}))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(r).await, json!({"error": "Invalid credentials"}));

        // Free text keeps line breaks and tabs and refuses other control characters.
        let t = Some(user.token.as_str());
        let r = app.put_json("/profile/", t, &json!({"bio": "two\nlines\tand a tab"})).await;
        assert_eq!(r.status(), StatusCode::OK);
        for bio in ["nul\u{0}here", "bell\u{7}"] {
            let r = app.put_json("/profile/", t, &json!({"bio": bio, "location": "Oslo"})).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bio:?}");
            assert_eq!(body(r).await["detail"][0]["loc"], json!(["body", "bio"]));
        }
        let profile = body(app.get("/profile/me", t).await).await;
        assert_eq!(profile["bio"], "two\nlines\tand a tab");
        assert!(profile["location"].is_null(), "nothing of a refused update is kept: {profile}");

        let a = Some(admin.token.as_str());
        let r = app
            .post_json("/rbac/permissions", a, &json!({"name": "post:read", "resource": "post", "action": "read", "description": "d\u{0}"}))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let permissions = body(app.get("/rbac/permissions", a).await).await;
        assert!(
            !permissions.as_array().unwrap().iter().any(|p| p["name"] == "post:read"),
            "{permissions}"
        );
    }
);
