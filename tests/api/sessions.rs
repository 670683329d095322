//! Refresh-token rotation, reuse detection, logout and session management.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, body};

backend_test!(
    async fn login_returns_a_refresh_token_that_rotates(app) {
        let user = app.user().await;
        let (_, first) = app.login_pair(&user.email, PASSWORD).await;
        let response = app.refresh(&first).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let pair = body(response).await;
        let second = pair["refresh_token"].as_str().unwrap();
        assert_ne!(second, first);
        assert_eq!(pair["token_type"], "bearer");
        let access = pair["access_token"].as_str().unwrap();
        assert_eq!(body(app.get("/auth/me", Some(access)).await).await["id"], user.id);
        // The new refresh token works in turn.
        assert_eq!(app.refresh(second).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn reusing_a_spent_refresh_token_revokes_the_whole_session(app) {
        let user = app.user().await;
        let (access, first) = app.login_pair(&user.email, PASSWORD).await;
        let second: Value = body(app.refresh(&first).await).await;
        let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
        let second_access = second["access_token"].as_str().unwrap().to_owned();
        app.clock.advance(TimeDelta::seconds(30));

        // An attacker replays the spent token: refused, and the session is gone.
        let replay = app.refresh(&first).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        assert!(body(replay).await["detail"].as_str().unwrap().contains("revoked"));
        assert_eq!(app.refresh(&second_refresh).await.status(), StatusCode::UNAUTHORIZED);
        for token in [&access, &second_access] {
            assert_eq!(app.get("/auth/me", Some(token)).await.status(), StatusCode::UNAUTHORIZED);
        }
        // Other sessions of the same user are untouched.
        let other = app.login(&user.email, PASSWORD).await;
        assert_eq!(app.get("/auth/me", Some(&other)).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn two_concurrent_refreshes_within_the_grace_window_both_succeed(app) {
        let user = app.user().await;
        let (_, first) = app.login_pair(&user.email, PASSWORD).await;
        let (a, b) = tokio::join!(app.refresh(&first), app.refresh(&first));
        assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
        let (a, b) = (body(a).await, body(b).await);
        // Same session (no new family): both new refresh tokens keep working.
        let sessions = body(app.get("/auth/sessions", Some(a["access_token"].as_str().unwrap())).await).await;
        assert_eq!(sessions.as_array().unwrap().len(), 2, "login session + user.user() session");
        app.clock.advance(TimeDelta::seconds(3));
        // Still inside the 5 s window: a late duplicate also succeeds.
        assert_eq!(app.refresh(&first).await.status(), StatusCode::OK);
        assert_eq!(app.refresh(a["refresh_token"].as_str().unwrap()).await.status(), StatusCode::OK);
        assert_eq!(app.refresh(b["refresh_token"].as_str().unwrap()).await.status(), StatusCode::OK);
        // Past it, the spent token is a replay.
        app.clock.advance(TimeDelta::seconds(3));
        assert_eq!(app.refresh(&first).await.status(), StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    async fn expired_unknown_and_malformed_refresh_tokens_are_rejected(app) {
        let user = app.user().await;
        let (_, refresh) = app.login_pair(&user.email, PASSWORD).await;
        assert_eq!(app.refresh("not-a-real-token").await.status(), StatusCode::UNAUTHORIZED);
        let missing = app.post_json("/auth/refresh", None, &json!({})).await;
        assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // The access token is not a refresh token.
        assert_eq!(app.refresh(&user.token).await.status(), StatusCode::UNAUTHORIZED);
        app.clock.advance(TimeDelta::days(30) + TimeDelta::seconds(1));
        let expired = app.refresh(&refresh).await;
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(expired.headers()["www-authenticate"], "Bearer");
    }
);

backend_test!(
    async fn a_refused_refresh_does_not_spend_the_token(app) {
        use sea_orm::{ConnectionTrait, Statement};
        let user = app.user().await;
        let (_, refresh) = app.login_pair(&user.email, PASSWORD).await;
        let backend = app.core.db.get_database_backend();
        let exec = |sql: String| {
            let db = app.core.db.clone();
            async move { db.execute_raw(Statement::from_string(backend, sql)).await.unwrap() }
        };
        let tokens = || async {
            let row = app
                .core
                .db
                .query_one_raw(Statement::from_string(backend, "SELECT COUNT(*) AS n FROM refresh_tokens"))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "n").unwrap()
        };
        let before = tokens().await;
        // A user made inactive behind the service's back, then a session revoked the same way:
        // each refresh is refused and leaves the token unspent, with no successor stored.
        let false_ = if backend == sea_orm::DbBackend::Postgres { "false" } else { "0" };
        let true_ = if backend == sea_orm::DbBackend::Postgres { "true" } else { "1" };
        exec(format!("UPDATE users SET is_active = {false_} WHERE id = {}", user.id)).await;
        assert_eq!(app.refresh(&refresh).await.status(), StatusCode::UNAUTHORIZED);
        exec(format!("UPDATE users SET is_active = {true_} WHERE id = {}", user.id)).await;
        let now = if backend == sea_orm::DbBackend::Sqlite { "'2000-01-01T00:00:00+00:00'" } else { "CURRENT_TIMESTAMP" };
        exec(format!("UPDATE sessions SET revoked_at = {now} WHERE user_id = {}", user.id)).await;
        assert_eq!(app.refresh(&refresh).await.status(), StatusCode::UNAUTHORIZED);
        exec(format!("UPDATE sessions SET revoked_at = NULL WHERE user_id = {}", user.id)).await;
        assert_eq!(tokens().await, before);
        // Restored, the same token rotates once, as if the refused attempts had never been.
        let response = app.refresh(&refresh).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(tokens().await, before + 1);
    }
);

backend_test!(
    async fn refreshing_slides_the_session_lifetime(app) {
        let user = app.user().await;
        let (_, mut refresh) = app.login_pair(&user.email, PASSWORD).await;
        for _ in 0..3 {
            app.clock.advance(TimeDelta::days(20));
            let pair = body(app.refresh(&refresh).await).await;
            refresh = pair["refresh_token"].as_str().expect("still alive after 20 days").to_owned();
        }
    }
);

backend_test!(
    async fn logout_ends_the_session_at_once(app) {
        let user = app.user().await;
        let (access, refresh) = app.login_pair(&user.email, PASSWORD).await;
        assert_eq!(app.post("/auth/logout", Some(&access)).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get("/auth/me", Some(&access)).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.refresh(&refresh).await.status(), StatusCode::UNAUTHORIZED);
        // The user's other session (from user()) still works.
        assert_eq!(app.get("/auth/me", Some(&user.token)).await.status(), StatusCode::OK);
        assert_eq!(app.post("/auth/logout", None).await.status(), StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    async fn logout_all_ends_every_session(app) {
        let user = app.user().await;
        let (a, a_refresh) = app.login_pair(&user.email, PASSWORD).await;
        let (b, _) = app.login_pair(&user.email, PASSWORD).await;
        let response = app.post("/auth/logout-all", Some(&a)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, json!({"revoked": 3}));
        for token in [&a, &b, &user.token] {
            assert_eq!(app.get("/auth/me", Some(token)).await.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(app.refresh(&a_refresh).await.status(), StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    async fn users_list_and_end_their_own_sessions(app) {
        let user = app.user().await;
        let phone = app
            .client
            .post(app.url("/auth/login"))
            .header("user-agent", "PhoneApp/1.0")
            .form(&[("username", user.email.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        let phone_token = body(phone).await["access_token"].as_str().unwrap().to_owned();
        let list = body(app.get("/auth/sessions", Some(&user.token)).await).await;
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2);
        let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        let phone_session = list.iter().find(|s| s["user_agent"] == "PhoneApp/1.0").expect("phone session");
        assert_eq!(phone_session["current"], false);
        assert_eq!(phone_session["client_address"], "127.0.0.1");
        for key in ["created_at", "last_used_at", "expires_at"] {
            assert!(phone_session[key].is_string(), "{key}");
        }
        let id = phone_session["id"].as_str().unwrap();

        // Someone else cannot end it.
        let other = app.user().await;
        let path = format!("/auth/sessions/{id}");
        assert_eq!(app.delete(&path, Some(&other.token)).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get("/auth/me", Some(&phone_token)).await.status(), StatusCode::OK);

        assert_eq!(app.delete(&path, Some(&user.token)).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get("/auth/me", Some(&phone_token)).await.status(), StatusCode::UNAUTHORIZED);
        let list = body(app.get("/auth/sessions", Some(&user.token)).await).await;
        assert_eq!(list.as_array().unwrap().len(), 1);
    }
);

backend_test!(
    async fn changing_the_password_ends_every_other_session(app) {
        let user = app.user().await;
        let (other, other_refresh) = app.login_pair(&user.email, PASSWORD).await;
        let response = app
            .put_json("/users/me", Some(&user.token), &json!({"password": "brand-new-password", "current_password": PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(app.get("/auth/me", Some(&user.token)).await.status(), StatusCode::OK, "this session stays");
        assert_eq!(app.get("/auth/me", Some(&other)).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.refresh(&other_refresh).await.status(), StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    async fn deactivation_kills_live_access_and_refresh_tokens(app) {
        let admin = app.admin().await;
        let user = app.user().await;
        let (access, refresh) = app.login_pair(&user.email, PASSWORD).await;
        let response = app.put(&format!("/users/{}/deactivate", user.id), Some(&admin.token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await["is_active"], false);
        assert_eq!(app.get("/auth/me", Some(&access)).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.refresh(&refresh).await.status(), StatusCode::UNAUTHORIZED);
        // Reactivated, the user logs in again; the old sessions stay dead.
        assert_eq!(app.put(&format!("/users/{}/activate", user.id), Some(&admin.token)).await.status(), StatusCode::OK);
        assert_eq!(app.get("/auth/me", Some(&access)).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.login_form(&user.email, PASSWORD).await.status(), StatusCode::OK);
    }
);

backend_test!(
    /// A user deleted while their password was being checked has nobody left to log in: the
    /// login's writes answer `None` and leave nothing behind, where a live user's open a session.
    async fn a_login_for_a_user_deleted_meanwhile_opens_nothing(app) {
        use users_api::store::sessions::{self, NewSession};
        let user = app.user().await;
        let now = chrono::Utc::now();
        let open = |user_id: i64, hash: &str| {
            let new = NewSession {
                user_id,
                expires_at: now + TimeDelta::days(1),
                user_agent: Some("test".into()),
                client_addr: None,
            };
            sessions::open_for_login(&app.core.db, app.core.sqlite_direct(), new, hash.to_owned(), now)
        };
        let gone = user.id + 1_000;
        assert_eq!(open(gone, "gone-hash").await.unwrap(), None);
        assert!(sessions::live_for_user(&app.core.db, gone, now).await.unwrap().is_empty());
        assert!(sessions::find_refresh(&app.core.db, None, "gone-hash").await.unwrap().is_none());

        let id = open(user.id, "live-hash").await.unwrap().expect("a live user's session");
        let (token, session, active) = sessions::find_refresh(&app.core.db, None, "live-hash")
            .await
            .unwrap()
            .expect("its refresh token");
        assert_eq!((session.id.as_str(), session.user_id, active), (id.as_str(), user.id, true));
        assert_eq!(token.expires_at, session.expires_at);
    }
);

/// On PostgreSQL a login's session is committed without waiting for the WAL flush (decision
/// 103), and only that transaction is: the connection that ran it goes on committing as the
/// server is configured, so a logout or registration on it next still waits for the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logins_relaxed_commit_does_not_outlast_it() {
    use sea_orm::{ConnectionTrait, Statement};
    let Some(app) = crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, |settings| {
        // One pooled connection: whatever runs next runs where the login's statement ran.
        settings.db_max_connections = Some(1);
    })
    .await
    else {
        return;
    };
    let user = app.user().await;
    let (access, _) = app.login_pair(&user.email, PASSWORD).await;
    assert_eq!(
        body(app.get("/auth/me", Some(&access)).await).await["id"],
        user.id
    );
    let show = Statement::from_string(app.core.db.get_database_backend(), "SHOW synchronous_commit");
    let row = app.core.db.query_one_raw(show).await.unwrap().unwrap();
    assert_eq!(row.try_get::<String>("", "synchronous_commit").unwrap(), "on");
    let sessions = Statement::from_sql_and_values(
        app.core.db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
        [user.id.into()],
    );
    let row = app.core.db.query_one_raw(sessions).await.unwrap().unwrap();
    assert_eq!(
        row.try_get::<i64>("", "n").unwrap(),
        2,
        "both logins' sessions are stored"
    );
}
