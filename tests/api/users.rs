use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, body};

fn emails(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

backend_test!(
    async fn listing_users_needs_permission(app) {
        let user = app.user().await;
        let response = app.get("/users/", Some(&user.token)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.get("/users/", None).await.status(), StatusCode::UNAUTHORIZED);
        let admin = app.admin().await;
        let response = app.get("/users/", Some(&admin.token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-total-count"], "2");
        assert_eq!(body(response).await.as_array().unwrap().len(), 2);
    }
);

backend_test!(
    async fn list_pages_search_and_filter(app) {
        let admin = app.admin().await;
        for (email, name, username) in [
            ("alice@example.com", "Alice Johnson", "alice"),
            ("bob@example.com", "Bob Stone", "bobby"),
            ("carol@example.com", "Carol Alison", "carol"),
            ("dan@example.com", "Dan 50%_off", "dan"),
        ] {
            let r = app
                .post_json("/auth/register", None, &json!({"email": email, "full_name": name, "username": username, "password": PASSWORD}))
                .await;
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        let t = Some(admin.token.as_str());

        // Search is a case-insensitive substring of email, username or full name.
        let r = app.get("/users/?search=ALI", t).await;
        assert_eq!(r.headers()["x-total-count"], "2");
        assert_eq!(emails(&body(r).await), ["alice@example.com", "carol@example.com"]);
        let r = app.get("/users/?search=bobby", t).await;
        assert_eq!(emails(&body(r).await), ["bob@example.com"]);
        // LIKE wildcards are literal.
        let r = app.get("/users/?search=50%25_", t).await;
        assert_eq!(emails(&body(r).await), ["dan@example.com"]);
        let r = app.get("/users/?search=%25", t).await;
        assert_eq!(emails(&body(r).await), ["dan@example.com"]);
        // A term never matches across two columns ("…example.com" then the username "bobby").
        let r = app.get("/users/?search=com%20bob", t).await;
        assert_eq!(r.headers()["x-total-count"], "0");
        assert!(emails(&body(r).await).is_empty());
        // A page of a search counts every match; so does a page past the last one.
        let r = app.get("/users/?search=example.com&skip=1&limit=2", t).await;
        assert_eq!(r.headers()["x-total-count"], "5");
        assert_eq!(emails(&body(r).await), ["alice@example.com", "bob@example.com"]);
        let r = app.get("/users/?search=example.com&skip=10", t).await;
        assert_eq!(r.headers()["x-total-count"], "5");
        assert!(emails(&body(r).await).is_empty());

        // Pages: total stays the full count.
        let r = app.get("/users/?skip=1&limit=2", t).await;
        assert_eq!(r.headers()["x-total-count"], "5");
        assert_eq!(emails(&body(r).await), ["alice@example.com", "bob@example.com"]);

        // Sorting, both directions.
        let r = app.get("/users/?sort=-email&limit=2", t).await;
        assert_eq!(emails(&body(r).await), ["dan@example.com", "carol@example.com"]);

        // Flags.
        let r = app.get("/users/?is_admin=true", t).await;
        assert_eq!(emails(&body(r).await), std::slice::from_ref(&admin.email));
        let bob = app.login("bob@example.com", PASSWORD).await;
        let bob_id = body(app.get("/users/me", Some(&bob)).await).await["id"].as_i64().unwrap();
        app.put_json(&format!("/users/{bob_id}"), t, &json!({"is_active": false})).await;
        let r = app.get("/users/?active_only=true", t).await;
        assert_eq!(r.headers()["x-total-count"], "4");
        assert!(!emails(&body(r).await).contains(&"bob@example.com".to_owned()));
    }
);

backend_test!(
    async fn search_follows_renames_and_deletions(app) {
        let admin = app.admin().await;
        let t = Some(admin.token.as_str());
        let r = app
            .post_json("/auth/register", None, &json!({"email": "zed@quux.example", "full_name": "Zed Quux", "username": "zedq", "password": PASSWORD}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = body(r).await["id"].as_i64().unwrap();
        let search = |term: &str| format!("/users/?search={term}");
        assert_eq!(emails(&body(app.get(&search("QUUX"), t).await).await), ["zed@quux.example"]);

        // A new name, email and username are found, the old ones no longer.
        let r = app
            .put_json(&format!("/users/{id}"), t, &json!({"full_name": "Zed Frobnitz", "email": "zed@blarg.example", "username": "zorro"}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        for gone in ["quux", "zedq"] {
            let r = app.get(&search(gone), t).await;
            assert_eq!(r.headers()["x-total-count"], "0", "{gone}");
        }
        for found in ["frobnitz", "blarg", "zorro", "d fro"] {
            assert_eq!(emails(&body(app.get(&search(found), t).await).await), ["zed@blarg.example"], "{found}");
        }
        // Other updates (a login stamps last_login_at) leave the user findable.
        app.login("zed@blarg.example", PASSWORD).await;
        assert_eq!(emails(&body(app.get(&search("frobnitz"), t).await).await), ["zed@blarg.example"]);
        // A quote in the term is an ordinary character.
        let r = app.get(&search("frob%22nitz"), t).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-total-count"], "0");

        assert_eq!(app.delete(&format!("/users/{id}"), t).await.status(), StatusCode::NO_CONTENT);
        let r = app.get(&search("frobnitz"), t).await;
        assert_eq!(r.headers()["x-total-count"], "0");
    }
);

backend_test!(
    async fn users_read_themselves_but_not_others(app) {
        let alice = app.user().await;
        let bob = app.user().await;
        let own = app.get(&format!("/users/{}", alice.id), Some(&alice.token)).await;
        assert_eq!(own.status(), StatusCode::OK);
        assert_eq!(body(own).await["email"], alice.email.as_str());
        let other = app.get(&format!("/users/{}", bob.id), Some(&alice.token)).await;
        assert_eq!(other.status(), StatusCode::FORBIDDEN);
        // Not 404 either: a user cannot probe which ids exist.
        let missing = app.get("/users/999999", Some(&alice.token)).await;
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);
        let admin = app.admin().await;
        assert_eq!(app.get(&format!("/users/{}", bob.id), Some(&admin.token)).await.status(), StatusCode::OK);
        let missing = app.get("/users/999999", Some(&admin.token)).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(missing).await, json!({"detail": "User not found"}));
        let me = body(app.get("/users/me", Some(&bob.token)).await).await;
        assert_eq!(me["id"], bob.id);
    }
);

backend_test!(
    async fn users_update_their_own_profile_fields(app) {
        let user = app.user().await;
        let response = app
            .put_json("/users/me", Some(&user.token), &json!({"full_name": "New Name", "username": "renamed", "is_admin": true, "is_active": false}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let updated = body(response).await;
        assert_eq!(updated["full_name"], "New Name");
        assert_eq!(updated["username"], "renamed");
        // Flags sent to the self-service route are ignored, never applied.
        assert_eq!(updated["is_admin"], false);
        assert_eq!(updated["is_active"], true);
        // null clears a nullable field.
        let cleared = body(app.put_json("/users/me", Some(&user.token), &json!({"full_name": null})).await).await;
        assert!(cleared["full_name"].is_null());
        assert_eq!(cleared["username"], "renamed");
        // Changing email to one that is taken is 409.
        let other = app.user().await;
        let taken = app.put_json("/users/me", Some(&user.token), &json!({"email": other.email.to_uppercase()})).await;
        assert_eq!(taken.status(), StatusCode::CONFLICT);
    }
);

backend_test!(
    async fn changing_your_password_needs_the_current_one(app) {
        let user = app.user().await;
        let missing = app.put_json("/users/me", Some(&user.token), &json!({"password": "a-brand-new-pass"})).await;
        assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(missing).await["detail"][0]["loc"], json!(["body", "current_password"]));
        let wrong = app
            .put_json("/users/me", Some(&user.token), &json!({"password": "a-brand-new-pass", "current_password": "nope-nope-nope"}))
            .await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
        let ok = app
            .put_json("/users/me", Some(&user.token), &json!({"password": "a-brand-new-pass", "current_password": PASSWORD}))
            .await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(app.login_form(&user.email, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.login_form(&user.email, "a-brand-new-pass").await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn only_privileged_callers_change_flags_or_other_users(app) {
        let alice = app.user().await;
        let bob = app.user().await;
        let own_flags = app.put_json(&format!("/users/{}", alice.id), Some(&alice.token), &json!({"is_admin": true})).await;
        assert_eq!(own_flags.status(), StatusCode::FORBIDDEN);
        let other = app.put_json(&format!("/users/{}", bob.id), Some(&alice.token), &json!({"full_name": "Hacked"})).await;
        assert_eq!(other.status(), StatusCode::FORBIDDEN);
        let own = app.put_json(&format!("/users/{}", alice.id), Some(&alice.token), &json!({"full_name": "Alice"})).await;
        assert_eq!(own.status(), StatusCode::OK);

        let admin = app.admin().await;
        let promoted = app.put_json(&format!("/users/{}", bob.id), Some(&admin.token), &json!({"is_admin": true, "password": "set-by-admin-1"})).await;
        assert_eq!(promoted.status(), StatusCode::OK);
        assert_eq!(body(promoted).await["is_admin"], true);
        // An admin resets another user's password without knowing the old one.
        assert_eq!(app.login_form(&bob.email, "set-by-admin-1").await.status(), StatusCode::OK);
    }
);

backend_test!(
    async fn admins_cannot_demote_deactivate_or_delete_themselves(app) {
        let admin = app.admin().await;
        let path = format!("/users/{}", admin.id);
        for change in [json!({"is_admin": false}), json!({"is_active": false})] {
            let response = app.put_json(&path, Some(&admin.token), &change).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{change}");
        }
        assert_eq!(app.delete(&path, Some(&admin.token)).await.status(), StatusCode::FORBIDDEN);
        let me = body(app.get("/users/me", Some(&admin.token)).await).await;
        assert_eq!((me["is_admin"].clone(), me["is_active"].clone()), (json!(true), json!(true)));
    }
);

backend_test!(
    async fn deleting_removes_the_user_and_their_sessions(app) {
        let alice = app.user().await;
        let bob = app.user().await;
        assert_eq!(app.delete(&format!("/users/{}", bob.id), Some(&alice.token)).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.delete(&format!("/users/{}", alice.id), Some(&alice.token)).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get("/auth/me", Some(&alice.token)).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.login_form(&alice.email, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
        let admin = app.admin().await;
        assert_eq!(app.delete(&format!("/users/{}", bob.id), Some(&admin.token)).await.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.get(&format!("/users/{}", bob.id), Some(&admin.token)).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&format!("/users/{}", bob.id), Some(&admin.token)).await.status(), StatusCode::NOT_FOUND);
        // The email is free again.
        let again = app.post_json("/auth/register", None, &json!({"email": alice.email, "password": PASSWORD})).await;
        assert_eq!(again.status(), StatusCode::CREATED);
    }
);
