//! Schema migrations, one file each, applied in order. A released migration is never edited:
//! changes come as a new migration so existing databases upgrade in place.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

mod m20260101_000001_users_and_sessions;
mod m20260102_000001_refresh_tokens_and_profiles;
mod m20260103_000001_rbac;
mod m20260104_000001_login_throttle;
mod m20260110_000001_search_indexes;
mod m20261123_000001_search_index;
mod m20261123_000002_search_gist;
mod m20261130_000001_sqlite_search;
mod m20261130_000002_auth_epoch;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_users_and_sessions::Migration),
            Box::new(m20260102_000001_refresh_tokens_and_profiles::Migration),
            Box::new(m20260103_000001_rbac::Migration),
            Box::new(m20260104_000001_login_throttle::Migration),
            Box::new(m20260110_000001_search_indexes::Migration),
            Box::new(m20261123_000001_search_index::Migration),
            Box::new(m20261123_000002_search_gist::Migration),
            Box::new(m20261130_000001_sqlite_search::Migration),
            Box::new(m20261130_000002_auth_epoch::Migration),
        ]
    }
}

/// A UTC timestamp column with microsecond precision on every backend. MySQL's `TIMESTAMP`
/// ends in 2038 and drops fractions, so MySQL gets `DATETIME(6)` (always written in UTC).
pub(crate) fn timestamp(backend: DbBackend, name: impl IntoIden) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    match backend {
        DbBackend::MySql => col.custom(Alias::new("DATETIME(6)")),
        _ => col.timestamp_with_time_zone(),
    };
    col
}
