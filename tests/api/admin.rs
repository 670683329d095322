//! Administration: creating users, account flags, bulk operations and their safety rules.

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::{PASSWORD, body};

backend_test!(
    async fn admins_create_users_with_flags(app) {
        let admin = app.admin().await;
        let response = app
            .post_json(
                "/users/",
                Some(&admin.token),
                &json!({"email": "staff@example.com", "password": PASSWORD, "full_name": "Staff", "is_admin": true, "is_active": false}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let created = body(response).await;
        assert_eq!((created["is_admin"].clone(), created["is_active"].clone()), (json!(true), json!(false)));
        let duplicate = app.post_json("/users/", Some(&admin.token), &json!({"email": "STAFF@example.com", "password": PASSWORD})).await;
        assert_eq!(duplicate.status(), StatusCode::CONFLICT);
        let invalid = app.post_json("/users/", Some(&admin.token), &json!({"email": "nope", "password": "x"})).await;
        assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);

        let user = app.user().await;
        let denied = app.post_json("/users/", Some(&user.token), &json!({"email": "x@example.com", "password": PASSWORD})).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    }
);

backend_test!(
    async fn flag_routes_activate_deactivate_promote_and_demote(app) {
        let admin = app.admin().await;
        let user = app.user().await;
        let base = format!("/users/{}", user.id);
        let t = Some(admin.token.as_str());
        assert_eq!(body(app.put(&format!("{base}/deactivate"), t).await).await["is_active"], false);
        assert_eq!(body(app.put(&format!("{base}/activate"), t).await).await["is_active"], true);
        assert_eq!(body(app.put(&format!("{base}/make-admin"), t).await).await["is_admin"], true);
        // The promoted user now administers.
        let promoted = app.login(&user.email, PASSWORD).await;
        assert_eq!(app.get("/users/", Some(&promoted)).await.status(), StatusCode::OK);
        assert_eq!(body(app.put(&format!("{base}/remove-admin"), t).await).await["is_admin"], false);
        assert_eq!(app.get("/users/", Some(&promoted)).await.status(), StatusCode::FORBIDDEN);

        // Ordinary users may not use them, and unknown ids are 404.
        let other = app.user().await;
        assert_eq!(app.put(&format!("{base}/deactivate"), Some(&other.token)).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.put(&format!("/users/{}/make-admin", other.id), Some(&other.token)).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.put("/users/999999/activate", t).await.status(), StatusCode::NOT_FOUND);
    }
);

backend_test!(
    async fn admins_cannot_remove_themselves_through_flag_routes(app) {
        let admin = app.admin().await;
        let base = format!("/users/{}", admin.id);
        assert_eq!(app.put(&format!("{base}/deactivate"), Some(&admin.token)).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.put(&format!("{base}/remove-admin"), Some(&admin.token)).await.status(), StatusCode::FORBIDDEN);
        let me = body(app.get("/users/me", Some(&admin.token)).await).await;
        assert_eq!((me["is_admin"].clone(), me["is_active"].clone()), (json!(true), json!(true)));
    }
);

backend_test!(
    async fn bulk_operations_report_unknown_ids_and_change_the_rest(app) {
        let admin = app.admin().await;
        let a = app.user().await;
        let b = app.user().await;
        let t = Some(admin.token.as_str());
        let r = app.put_json("/users/bulk/deactivate", t, &json!({"user_ids": [a.id, b.id, 999998, 999999, a.id]})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, json!({"updated": 2, "not_found": [999998, 999999]}));
        assert_eq!(app.get("/auth/me", Some(&a.token)).await.status(), StatusCode::UNAUTHORIZED, "sessions end");
        let r = app.get("/users/?active_only=true", t).await;
        assert_eq!(r.headers()["x-total-count"], "1");

        let r = app.put_json("/users/bulk/activate", t, &json!({"user_ids": [a.id, b.id]})).await;
        assert_eq!(body(r).await, json!({"updated": 2, "not_found": []}));
        let r = app.put_json("/users/bulk/delete", t, &json!({"user_ids": [a.id, 424242]})).await;
        assert_eq!(body(r).await, json!({"deleted": 1, "not_found": [424242]}));
        assert_eq!(app.get(&format!("/users/{}", a.id), t).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/users/{}", b.id), t).await.status(), StatusCode::OK);

        let empty = app.put_json("/users/bulk/delete", t, &json!({})).await;
        assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let too_many: Vec<i64> = (1..=1001).collect();
        let r = app.put_json("/users/bulk/activate", t, &json!({"user_ids": too_many})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let b_token = app.login(&b.email, PASSWORD).await;
        let denied = app.put_json("/users/bulk/delete", Some(&b_token), &json!({"user_ids": [b.id]})).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    }
);

backend_test!(
    async fn bulk_operations_never_include_the_caller(app) {
        let admin = app.admin().await;
        let other = app.user().await;
        let t = Some(admin.token.as_str());
        for route in ["/users/bulk/deactivate", "/users/bulk/delete"] {
            let r = app.put_json(route, t, &json!({"user_ids": [other.id, admin.id]})).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{route}");
        }
        // Nothing changed.
        assert_eq!(app.get("/auth/me", Some(&other.token)).await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn a_bulk_delete_that_fails_midway_leaves_every_user_in_place(app) {
        let admin = app.admin().await;
        let a = app.user().await;
        let b = app.user().await;
        let c = app.user().await;
        // Another table (say, a reporting table) still points at c, without cascading.
        let db = &app.core.db;
        db.execute_unprepared("CREATE TABLE audit_refs (user_id BIGINT NOT NULL, FOREIGN KEY (user_id) REFERENCES users(id))")
            .await
            .unwrap();
        db.execute_unprepared(&format!("INSERT INTO audit_refs (user_id) VALUES ({})", c.id)).await.unwrap();

        let r = app.put_json("/users/bulk/delete", Some(&admin.token), &json!({"user_ids": [a.id, b.id, c.id]})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        for user in [&a, &b, &c] {
            assert_eq!(app.get(&format!("/users/{}", user.id), Some(&admin.token)).await.status(), StatusCode::OK);
            assert_eq!(app.login_form(&user.email, PASSWORD).await.status(), StatusCode::OK);
        }
    }
);

backend_test!(
    async fn a_refused_operation_does_not_hold_up_the_writes_after_it(app) {
        let admin = app.admin().await;
        let moderator = app.user().await;
        app.post_json(&format!("/rbac/users/{}/roles", moderator.id), Some(&admin.token), &json!({"role_ids": [2]})).await;
        let m = Some(moderator.token.as_str());
        for _ in 0..3 {
            // Refused inside its transaction (the last admin), then rolled back.
            let r = app.put_json("/users/bulk/deactivate", m, &json!({"user_ids": [admin.id]})).await;
            assert_eq!(r.status(), StatusCode::CONFLICT);
            let writes: Vec<_> = (0..4)
                .map(|i| json!({"email": format!("w{i}-{}@example.com", app.unique()), "password": PASSWORD}))
                .collect();
            let statuses = futures::future::join_all(writes.iter().map(|b| app.post_json("/auth/register", None, b))).await;
            assert!(statuses.iter().all(|r| r.status() == StatusCode::CREATED), "{:?}", statuses.iter().map(|r| r.status()).collect::<Vec<_>>());
        }
    }
);

backend_test!(
    /// Found by schemathesis: on SQLite a use case's transaction used to start deferred, read,
    /// then fail at once with "database is locked" when it turned into a writer while another
    /// request wrote, so concurrent admin writes answered 503.
    async fn concurrent_admin_writes_all_succeed(app) {
        let admin = app.admin().await;
        let mut ids = Vec::new();
        for _ in 0..6 {
            ids.push(app.user().await.id);
        }
        let t = Some(admin.token.as_str());
        for _ in 0..3 {
            let paths: Vec<String> = ids
                .iter()
                .flat_map(|id| [format!("/users/{id}/make-admin"), format!("/users/{id}/activate")])
                .collect();
            let requests = paths.iter().map(|p| app.put(p, t));
            let bulk = json!({"user_ids": ids});
            let mut statuses: Vec<StatusCode> = futures::future::join_all(requests).await.iter().map(|r| r.status()).collect();
            let (a, b) = futures::join!(
                app.put_json("/users/bulk/activate", t, &bulk),
                app.put_json("/users/bulk/activate", t, &bulk)
            );
            statuses.extend([a.status(), b.status()]);
            assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        }
    }
);
