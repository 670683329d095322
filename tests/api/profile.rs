//! Profiles and preferences, on both the `/profile/…` and `/profile/me…` paths.

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::body;

fn failing(errors: &Value) -> Vec<String> {
    let mut locs: Vec<String> = errors["detail"]
        .as_array()
        .expect("a list of errors")
        .iter()
        .map(|e| {
            e["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    locs.sort();
    locs
}

backend_test!(
    async fn the_seed_profile_walkthrough_works(app) {
        let user = app.user().await;
        let t = Some(user.token.as_str());
        // Seed 004: create the profile.
        let created = app
            .post_json(
                "/profile/",
                t,
                &json!({"bio": "I am a software developer passionate about microservices!", "location": "San Francisco, CA",
                        "website": "https://alice-dev.com", "phone_number": "+1-555-0123", "birth_date": "1990-05-15"}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let profile = body(created).await;
        assert_eq!(profile["phone_number"], "+1-555-0123");
        assert_eq!(profile["birth_date"], "1990-05-15");
        assert_eq!(profile["email"], user.email.as_str());

        // Seed 003: update through /profile/me with `phone`.
        let updated = app.put_json("/profile/me", t, &json!({"location": "Oakland, CA", "phone": "555.0199"})).await;
        assert_eq!(updated.status(), StatusCode::OK);
        let profile = body(updated).await;
        assert_eq!(profile["location"], "Oakland, CA");
        assert_eq!(profile["phone_number"], "555.0199");
        assert_eq!(profile["bio"], "I am a software developer passionate about microservices!", "untouched fields stay");

        // Both seeds' preference updates.
        let prefs = json!({"theme": "dark", "language": "en", "timezone": "America/Los_Angeles",
                           "notifications_email": true, "notifications_sms": false, "privacy_public_profile": true});
        let r = app.put_json("/profile/preferences", t, &prefs).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, prefs);
        let r = app.put_json("/profile/me/preferences", t, &json!({"theme": "light", "notifications": true})).await;
        assert_eq!(body(r).await["notifications"], true, "unknown keys are kept");
        let stored = body(app.get("/profile/me/preferences", t).await).await;
        assert_eq!(stored["theme"], "light");
        assert_eq!(stored["timezone"], "America/Los_Angeles", "merge keeps other keys");
        let full = body(app.get("/profile/", t).await).await;
        assert_eq!(full["preferences"]["theme"], "light");
        assert_eq!(full["website"], "https://alice-dev.com");
    }
);

backend_test!(
    async fn null_clears_and_delete_routes_remove(app) {
        let user = app.user().await;
        let t = Some(user.token.as_str());
        app.put_json("/profile", t, &json!({"bio": "hello", "avatar_url": "https://img.example.com/a.png", "website": "http://a.co"})).await;
        let r = body(app.put_json("/profile", t, &json!({"website": null})).await).await;
        assert!(r["website"].is_null());
        assert_eq!(r["bio"], "hello");
        assert_eq!(app.delete("/profile/avatar", t).await.status(), StatusCode::NO_CONTENT);
        assert!(body(app.get("/profile/me", t).await).await["avatar_url"].is_null());
        app.put_json("/profile/me", t, &json!({"avatar_url": "https://img.example.com/b.png"})).await;
        assert_eq!(app.delete("/profile/me/avatar", t).await.status(), StatusCode::NO_CONTENT);
        assert!(body(app.get("/profile", t).await).await["avatar_url"].is_null());

        app.put_json("/profile/preferences", t, &json!({"theme": "dark", "x": 1})).await;
        let r = body(app.put_json("/profile/preferences", t, &json!({"x": null})).await).await;
        assert_eq!(r, json!({"theme": "dark"}), "null removes a preference");
        assert_eq!(app.delete("/profile/", t).await.status(), StatusCode::NO_CONTENT);
        let cleared = body(app.get("/profile", t).await).await;
        assert!(cleared["bio"].is_null());
        assert_eq!(cleared["preferences"], json!({}));
        assert_eq!(cleared["email"], user.email.as_str(), "the account stays");
    }
);

backend_test!(
    async fn every_profile_validation_rule_names_its_field(app) {
        let user = app.user().await;
        let t = Some(user.token.as_str());
        let tomorrow = (Utc::now() + TimeDelta::days(1)).date_naive().to_string();
        let r = app
            .put_json(
                "/profile/",
                t,
                &json!({"website": "javascript:alert(1)", "avatar_url": format!("https://x.co/{}", "a".repeat(500)),
                        "phone_number": "call me maybe", "birth_date": tomorrow, "bio": "b".repeat(2001),
                        "location": "l".repeat(256)}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            failing(&body(r).await),
            ["body.avatar_url", "body.bio", "body.birth_date", "body.location", "body.phone_number", "body.website"]
        );
        let r = app.put_json("/profile/", t, &json!({"birth_date": "1990-02-30"})).await;
        assert_eq!(failing(&body(r).await), ["body.birth_date"]);
        let r = app.put_json("/profile/", t, &json!({"phone_number": "+1-555-0123-4567-8901-2"})).await;
        assert_eq!(failing(&body(r).await), ["body.phone_number"]);
        // Nothing was written.
        let profile = body(app.get("/profile", t).await).await;
        assert!(profile["website"].is_null() && profile["bio"].is_null());

        let r = app
            .put_json(
                "/profile/preferences",
                t,
                &json!({"theme": "blue", "language": "not a tag!", "timezone": "Mars/Olympus_Mons",
                        "notifications_email": "yes", "notifications_sms": 0, "privacy_public_profile": "true"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            failing(&body(r).await),
            ["body.language", "body.notifications_email", "body.notifications_sms", "body.privacy_public_profile", "body.theme", "body.timezone"]
        );
        let r = app.put_json("/profile/preferences", t, &json!({"blob": "x".repeat(17_000)})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.put_json("/profile/preferences", t, &json!(["not", "an", "object"])).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(app.get("/profile/preferences", t).await).await, json!({}));
    }
);

backend_test!(
    async fn public_profiles_exist_only_when_the_user_opted_in(app) {
        let alice = app.user().await;
        let bob = app.user().await;
        app.put_json("/profile", Some(&alice.token), &json!({"bio": "Alice here", "phone_number": "+1 555 0100"})).await;
        let path = format!("/profile/{}", alice.id);
        let hidden = app.get(&path, Some(&bob.token)).await;
        assert_eq!(hidden.status(), StatusCode::NOT_FOUND);

        app.put_json("/profile/preferences", Some(&alice.token), &json!({"privacy_public_profile": true})).await;
        let shown = app.get(&path, Some(&bob.token)).await;
        assert_eq!(shown.status(), StatusCode::OK);
        let public = body(shown).await;
        assert_eq!(public["bio"], "Alice here");
        for private in ["email", "phone_number", "birth_date", "preferences"] {
            assert!(public.get(private).is_none(), "{private} is not public");
        }

        app.put_json("/profile/preferences", Some(&alice.token), &json!({"privacy_public_profile": false})).await;
        assert_eq!(app.get(&path, Some(&bob.token)).await.status(), StatusCode::NOT_FOUND);
        // Admins see every profile; unknown ids are 404 for everyone.
        let admin = app.admin().await;
        assert_eq!(app.get(&path, Some(&admin.token)).await.status(), StatusCode::OK);
        assert_eq!(app.get("/profile/999999", Some(&admin.token)).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get(&path, None).await.status(), StatusCode::UNAUTHORIZED);
    }
);
