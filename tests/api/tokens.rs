use base64::Engine as _;
use chrono::{TimeDelta, Utc};
use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{JWT_SECRET, body};

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json claims")
}

async fn assert_rejected(app: &crate::helpers::TestApp, token: &str, why: &str) {
    let response = app.get("/auth/me", Some(token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
    assert_eq!(response.headers()["www-authenticate"], "Bearer", "{why}");
}

backend_test!(
    async fn access_tokens_carry_the_contract_claims(app) {
        let user = app.user().await;
        let claims = claims_of(&user.token);
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!(claims["type"], "access");
        for key in ["exp", "iat", "jti", "sid"] {
            assert!(!claims[key].is_null(), "claim {key} missing");
        }
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
        let response = app.client.post(app.url("/auth/test-token")).bearer_auth(&user.token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await["id"], user.id);
    }
);

backend_test!(
    async fn missing_and_garbage_tokens_are_401(app) {
        let response = app.get("/auth/me", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(body(response).await["detail"], "Not authenticated");
        assert_rejected(&app, "not-a-jwt", "garbage").await;
        let basic = app.client.get(app.url("/auth/me")).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    async fn forged_tokens_are_401(app) {
        let user = app.user().await;
        let mut claims = claims_of(&user.token);

        // Signed with another key.
        let forged = encode(&Header::default(), &claims, &EncodingKey::from_secret(b"some-other-secret-some-other-secret")).unwrap();
        assert_rejected(&app, &forged, "wrong signature").await;

        // alg: none, unsigned.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), b64.encode(claims.to_string()));
        assert_rejected(&app, &none, "alg none").await;

        // The right key, but not an access token.
        claims["type"] = json!("refresh");
        let refresh = encode(&Header::default(), &claims, &EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();
        assert_rejected(&app, &refresh, "refresh type").await;

        // The right key, a real session, but another user's id.
        claims["type"] = json!("access");
        claims["sub"] = json!((user.id + 1000).to_string());
        let other = encode(&Header::default(), &claims, &EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();
        assert_rejected(&app, &other, "sub does not own the session").await;

        // A well-signed token for a session that never existed.
        claims["sub"] = json!(user.id.to_string());
        claims["sid"] = json!("no-such-session");
        claims["exp"] = json!((Utc::now() + TimeDelta::minutes(5)).timestamp());
        let unknown = encode(&Header::default(), &claims, &EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();
        assert_rejected(&app, &unknown, "unknown session").await;
    }
);

backend_test!(
    async fn tokens_expire_after_fifteen_minutes(app) {
        let user = app.user().await;
        app.clock.advance(TimeDelta::minutes(14));
        assert_eq!(app.get("/auth/me", Some(&user.token)).await.status(), StatusCode::OK);
        app.clock.advance(TimeDelta::minutes(1));
        assert_rejected(&app, &user.token, "expired").await;
    }
);

backend_test!(
    async fn tokens_of_deleted_or_deactivated_users_stop_working_at_once(app) {
        let admin = app.admin().await;
        let doomed = app.user().await;
        let paused = app.user().await;
        assert_eq!(app.delete(&format!("/users/{}", doomed.id), Some(&admin.token)).await.status(), StatusCode::NO_CONTENT);
        assert_rejected(&app, &doomed.token, "deleted user").await;
        let response = app.put_json(&format!("/users/{}", paused.id), Some(&admin.token), &json!({"is_active": false})).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_rejected(&app, &paused.token, "deactivated user").await;
    }
);
