//! One trigram index over the three searched columns together, replacing the three per-column
//! ones on PostgreSQL. A search tests `%term%` against the email, username and full name; with
//! one index per column that is three index scans OR-ed together, each reading the long
//! posting lists of the trigrams every address shares (`use`, `ser`, `.ex` …), for every
//! search. One index over the joined text is one scan, and the query keeps the per-column test
//! as a filter, so a match that spans two columns is not counted. Measured with pgbench at 100k
//! users: about 3.5 times the searches per second of the per-column indexes (docs/benchmarks.md).
//!
//! Like the migration before it, it does nothing (but the previous one's warning) where
//! `pg_trgm` is not available, and nothing on SQLite and MySQL.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

// The per-column indexes this one replaces are the previous migration's.
use super::m20260110_000001_search_indexes::{INDEXES as PER_COLUMN, trigrams_ready};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Must match `SEARCH_TEXT_POSTGRES` in `store::users` for the planner to use it.
pub(super) const CREATE: &str = "CREATE INDEX IF NOT EXISTS ix_users_search_trgm ON users USING gin \
    ((email_lower || ' ' || COALESCE(username_lower, '') || ' ' || LOWER(COALESCE(full_name, ''))) gin_trgm_ops)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        if !trigrams_ready(db).await? {
            return Ok(());
        }
        db.execute_unprepared(CREATE).await?;
        for (name, _) in PER_COLUMN {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        if !trigrams_ready(db).await? {
            return Ok(());
        }
        for (name, expr) in PER_COLUMN {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON users USING gin ({expr} gin_trgm_ops)"
            ))
            .await?;
        }
        db.execute_unprepared("DROP INDEX IF EXISTS ix_users_search_trgm")
            .await?;
        Ok(())
    }
}
