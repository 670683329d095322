//! Trigram indexes for the admin search (`GET /users?search=…`, a `%term%` match on the email,
//! username and full name) on PostgreSQL. A B-tree cannot serve a pattern with a leading
//! wildcard, so without these every search reads the whole table; `pg_trgm`'s GIN indexes
//! answer it from the trigrams of the term (terms of three characters or more).
//!
//! The extension ships with PostgreSQL's contrib package and is "trusted" (PostgreSQL 13+), so
//! a database owner may create it. When it is not available or we may not create it, the
//! migration does nothing but log a warning: search stays correct, only slower. SQLite and
//! MySQL have no such index type; there the search scans, which suits their smaller
//! deployments.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The expressions must match the search query in `store::users` exactly for the planner to
/// use them: the normalised columns as they are, the full name through `LOWER`.
pub(super) const INDEXES: [(&str, &str); 3] = [
    ("ix_users_email_lower_trgm", "email_lower"),
    ("ix_users_username_lower_trgm", "username_lower"),
    ("ix_users_full_name_trgm", "LOWER(full_name)"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        if !trigrams_ready(db).await? {
            tracing::warn!(
                "the pg_trgm extension is not available to this database user; user search \
                 will scan the users table (install postgresql-contrib, or create the extension \
                 as a superuser, then run `users-api migrate down 1 && users-api migrate up`)"
            );
            return Ok(());
        }
        for (name, expr) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON users USING gin ({expr} gin_trgm_ops)"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // The extension stays: something else may use it.
        for (name, _) in INDEXES {
            manager
                .get_connection()
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}

/// Makes sure `pg_trgm` is installed, creating it when it is available and we may; answers
/// whether it is there. Asked first, because a failed `CREATE EXTENSION` would abort the
/// migration's transaction.
pub(super) async fn trigrams_ready(db: &SchemaManagerConnection<'_>) -> Result<bool, DbErr> {
    let query = |sql: &str| Statement::from_string(DbBackend::Postgres, sql.to_owned());
    let row = db
        .query_one_raw(query(
            "SELECT \
               EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') AS installed, \
               EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') AS available, \
               (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                 OR has_database_privilege(current_database(), 'CREATE') AS may_create",
        ))
        .await?;
    let flag = |name: &str| -> Result<bool, DbErr> {
        Ok(row
            .as_ref()
            .map(|r| r.try_get::<Option<bool>>("", name))
            .transpose()?
            .flatten()
            .unwrap_or(false))
    };
    if flag("installed")? {
        return Ok(true);
    }
    if !(flag("available")? && flag("may_create")?) {
        return Ok(false);
    }
    db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .await?;
    Ok(true)
}
