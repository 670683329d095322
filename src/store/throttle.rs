//! Queries on `login_throttle`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};

use super::entities::login_throttle::{Column, Entity as Throttle, Model as Counter};

pub async fn find(db: &impl ConnectionTrait, keys: &[String]) -> Result<Vec<Counter>, DbErr> {
    Throttle::find()
        .filter(Column::Key.is_in(keys.iter().cloned()))
        .all(db)
        .await
}

/// Writes counters, replacing whatever the keys held.
pub async fn save(db: &impl ConnectionTrait, counters: Vec<Counter>) -> Result<(), DbErr> {
    if counters.is_empty() {
        return Ok(());
    }
    Throttle::insert_many(counters.into_iter().map(IntoActiveModel::into_active_model))
        .on_conflict(
            OnConflict::column(Column::Key)
                .update_columns([
                    Column::Failures,
                    Column::WindowStartedAt,
                    Column::LastFailureAt,
                    Column::LockedUntil,
                    Column::LockLevel,
                ])
                .to_owned(),
        )
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    Throttle::delete_many()
        .filter(Column::Key.eq(key))
        .exec(db)
        .await
        .map(|_| ())
}

/// Forgets counters idle since `before` and not locked, so the table stays small.
pub async fn prune(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Throttle::delete_many()
        .filter(Column::LastFailureAt.lt(before))
        .filter(Column::LockedUntil.is_null().or(Column::LockedUntil.lt(before)))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
