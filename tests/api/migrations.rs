//! Upgrading a database created by an earlier release.

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Query};
use sea_orm_migration::MigratorTrait;
use users_api::auth::PasswordHasher;
use users_api::domain::SecretString;
use users_api::store::PoolSettings;
use users_api::store::migrations::Migrator;

use crate::helpers::{PASSWORD, body};

backend_test!(
    before = first_release_with_a_user;
    async fn a_database_from_the_first_release_upgrades_and_keeps_its_users(app) {
        // `app` was started on a database that held only the first release's schema and a user
        // written by that release; start-up migrated it.
        let token = app.login("early@example.com", PASSWORD).await;
        let me = body(app.get("/profile/me", Some(&token)).await).await;
        assert_eq!(me["email"], "Early@Example.com");
        assert_eq!(me["full_name"], "Early Bird");
        assert!(me["bio"].is_null(), "new columns start empty");
        assert_eq!(me["preferences"], serde_json::json!({}));
        let refresh = app.login_pair("early@example.com", PASSWORD).await.1;
        assert_eq!(app.refresh(&refresh).await.status(), StatusCode::OK);
        let status = Migrator::get_pending_migrations(&app.core.db).await.unwrap();
        assert!(status.is_empty(), "every migration applied");
        // Search indexes built by later migrations cover the users already there.
        let admin = app.admin().await;
        let found = body(app.get("/users/?search=bird", Some(&admin.token)).await).await;
        assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
        assert_eq!(found[0]["email"], "Early@Example.com");
    }
);

/// Lays down the first release's schema (migration 1 only) with one user in it.
pub async fn first_release_with_a_user(url: String) {
    let pool = PoolSettings {
        max_connections: Some(1),
        acquire_timeout: std::time::Duration::from_secs(5),
    };
    let db = users_api::store::connect(&url, &pool).await.unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    let hash = PasswordHasher::new(1)
        .unwrap()
        .hash(&SecretString::new(PASSWORD))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let insert = Query::insert()
        .into_table(Alias::new("users"))
        .columns(
            [
                "email",
                "email_lower",
                "full_name",
                "password_hash",
                "is_active",
                "is_admin",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            "Early@Example.com".into(),
            "early@example.com".into(),
            "Early Bird".into(),
            hash.into(),
            true.into(),
            false.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    db.execute(&insert).await.unwrap();
    db.close().await.unwrap();
}
