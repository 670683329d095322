//! Queries on `login_throttle`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, IntoActiveModel, Iterable, QueryFilter, Statement,
};

use super::Direct;
use super::entities::login_throttle::{Column, Entity as Throttle, Model as Counter};
use super::entities::user::{Column as UserColumn, Model as User};

pub async fn find(db: &impl ConnectionTrait, keys: &[String]) -> Result<Vec<Counter>, DbErr> {
    Throttle::find()
        .filter(Column::Key.is_in(keys.iter().cloned()))
        .all(db)
        .await
}

/// The counters of `keys` (one or two of them) and the user `login` names, as a login needs
/// them before it hashes. On PostgreSQL one statement answers both (decision 86), pipelined
/// when `direct` can (decision 109); on a SQLite file two statements on the calling thread
/// (`direct`, decision 100); elsewhere two.
pub async fn find_with_user(
    db: &DatabaseConnection,
    direct: Option<&Direct>,
    keys: &[String],
    login: &str,
) -> Result<(Vec<Counter>, Option<User>), DbErr> {
    if let Some(direct) = direct
        && let Some(found) = direct.login_lookup(keys, login).await
    {
        return Ok(found);
    }
    if db.get_database_backend() != DbBackend::Postgres || keys.len() > 2 {
        let counters = if keys.is_empty() {
            Vec::new()
        } else {
            find(db, keys).await?
        };
        return Ok((counters, super::users::find_by_login(db, login).await?));
    }
    let (column, key) = super::users::login_key(login);
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        login_sql_postgres(column),
        [
            keys.first().cloned().into(),
            keys.get(1).cloned().into(),
            key.into(),
        ],
    );
    let row = super::pg_query_one(db, statement)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the login lookup answered no row".into()))?;
    let counters: String = row.try_get("", "throttle_counters")?;
    let counters = serde_json::from_str(&counters)
        .map_err(|e| DbErr::Type(format!("throttle counters from PostgreSQL: {e}")))?;
    let user = match row.try_get::<Option<i64>>("", "id")? {
        Some(_) => Some(User::from_query_result(&row, "")?),
        None => None,
    };
    Ok((counters, user))
}

/// PostgreSQL's login lookup of a login in `column` (one of [`super::users::login_key`]'s): every
/// user column in the entity's order, all NULL when nobody has that login, then the counters of
/// the keys `$1` and `$2` as one JSON array, never NULL (a key of NULL matches no counter).
pub(super) fn login_sql_postgres(column: UserColumn) -> &'static str {
    static EMAIL: LazyLock<String> = LazyLock::new(|| login_sql(UserColumn::EmailLower));
    static USERNAME: LazyLock<String> = LazyLock::new(|| login_sql(UserColumn::UsernameLower));
    match column {
        UserColumn::EmailLower => &EMAIL,
        _ => &USERNAME,
    }
}

fn login_sql(column: UserColumn) -> String {
    let user_columns = UserColumn::iter()
        .map(|c| format!("u.{}", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {user_columns}, (SELECT coalesce(json_agg(t), '[]')::text FROM login_throttle t \
                 WHERE t.key IN ($1, $2)) AS throttle_counters \
         FROM (VALUES (1)) AS one (x) LEFT JOIN users u ON u.{} = $3",
        column.as_str()
    )
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
