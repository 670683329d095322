use reqwest::StatusCode;

use crate::helpers::body;

backend_test!(
    async fn root_names_the_service_and_its_docs(app) {
        let response = app.get("/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let info = body(response).await;
        assert_eq!(info["name"], "users-api");
        assert_eq!(info["docs"], "/docs");
        assert_eq!(info["openapi"], "/openapi.json");
    }
);

backend_test!(
    async fn liveness_and_readiness_answer_ok(app) {
        let live = app.get("/healthz", None).await;
        assert_eq!(live.status(), StatusCode::OK);
        assert_eq!(body(live).await, serde_json::json!({"status": "ok"}));
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(body(ready).await, serde_json::json!({"status": "ready"}));
    }
);

backend_test!(
    async fn readiness_is_503_when_the_database_is_gone(app) {
        app.core.db.clone().close().await.expect("pool closes");
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(ready).await, serde_json::json!({"detail": "db not ready"}));
        // Liveness does no I/O and stays up.
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn every_response_carries_a_request_id(app) {
        let response = app.get("/healthz", None).await;
        let id = response.headers().get("x-request-id").expect("x-request-id header");
        assert!(!id.is_empty());
        let response = app.get("/no/such/route", None).await;
        assert!(response.headers().contains_key("x-request-id"));
    }
);

#[tokio::test]
async fn openapi_document_is_3_1_and_covers_every_route() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .expect("sqlite app");
    let spec = body(app.get("/openapi.json", None).await).await;
    assert!(spec["openapi"].as_str().expect("version").starts_with("3.1"));
    let expected = [
        ("/", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/auth/register", "post"),
        ("/auth/login", "post"),
        ("/auth/me", "get"),
        ("/auth/test-token", "post"),
        ("/users", "get"),
        ("/users/me", "get"),
        ("/users/me", "put"),
        ("/users/{id}", "get"),
        ("/users/{id}", "put"),
        ("/users/{id}", "delete"),
    ];
    for (path, method) in expected {
        let op = &spec["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from /openapi.json");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }
    for schema in [
        "UserOut",
        "RegisterRequest",
        "TokenOut",
        "ErrorBody",
        "ValidationBody",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn swagger_ui_and_the_reference_page_are_served_from_the_binary() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .expect("sqlite app");
    let docs = app.get("/docs/", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger"), "not Swagger UI: {html}");
    // The page's scripts come from this server, not a CDN.
    assert!(
        !html.contains("https://"),
        "Swagger UI references an external URL"
    );
    let bundle = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(bundle.status(), StatusCode::OK);
    let redoc = app.get("/redoc", None).await;
    assert_eq!(redoc.status(), StatusCode::OK);
    let html = redoc.text().await.expect("html");
    assert!(
        !html.contains("https://"),
        "the reference page loads nothing from elsewhere"
    );
    let script = app.get("/redoc/reference.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.unwrap().contains("/openapi.json"));
}
