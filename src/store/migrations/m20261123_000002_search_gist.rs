//! The search index on PostgreSQL becomes a GiST trigram index (signature of 256 bytes) over
//! the same joined text, in place of the GIN one.
//!
//! GIN reads the whole posting list of every trigram of the term. Where most rows share part
//! of the term (`user…`, a company's one e-mail domain), those lists hold nearly every row, and
//! a search for `user1234` read about 80 index pages for 11 matches (1.0 ms). GiST walks a tree
//! of trigram signatures and stops at branches that lack any of the term's trigrams, so shared
//! trigrams cost little (0.07 ms for the same search). It is slower for a short term with no
//! shared part (`1234`: 0.22 ms against 0.06) and a term that matches nothing; both stay under
//! a millisecond at 100k users, where GIN's cost grows with how common the shared part is.
//! Measured per pattern in docs/benchmarks.md.
//!
//! Signatures of 256 bytes need pg_trgm 1.5 (PostgreSQL 13); with an older pg_trgm, or none,
//! this migration leaves the index as it is.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;

use super::m20260110_000001_search_indexes::trigrams_ready;
use super::m20261123_000001_search_index::CREATE as CREATE_GIN;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Must match `SEARCH_TEXT_POSTGRES` in `store::users` for the planner to use it.
const CREATE: &str = "CREATE INDEX IF NOT EXISTS ix_users_search_gist ON users USING gist \
    ((email_lower || ' ' || COALESCE(username_lower, '') || ' ' || LOWER(COALESCE(full_name, ''))) \
    gist_trgm_ops(siglen = 256))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        if !trigrams_ready(db).await? || !signatures_sized(db).await? {
            return Ok(());
        }
        db.execute_unprepared(CREATE).await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_users_search_trgm")
            .await?;
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
        db.execute_unprepared(CREATE_GIN).await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_users_search_gist")
            .await?;
        Ok(())
    }
}

/// Whether the installed pg_trgm takes a signature length (version 1.5 and later).
async fn signatures_sized(db: &SchemaManagerConnection<'_>) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'",
        ))
        .await?;
    let Some(version) = row.map(|r| r.try_get::<String>("", "extversion")).transpose()? else {
        return Ok(false);
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (1, 5))
}
