//! Queries on `sessions` and their `refresh_tokens`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    IdenStatic, JoinType, QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, SelectA, SelectB,
};

use super::entities::refresh_token::{
    ActiveModel as RefreshActive, Column as RefreshColumn, Entity as RefreshTokens, Model as RefreshToken,
};
use super::entities::session::{ActiveModel, Column, Entity as Sessions, Model as Session};
use super::entities::user::{Entity as Users, Model as User};
use super::entities::{permission, role, role_permission, user_role};

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewSession,
    now: DateTime<Utc>,
) -> Result<Session, DbErr> {
    ActiveModel {
        id: Set(uuid::Uuid::new_v4().simple().to_string()),
        user_id: Set(new.user_id),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        user_agent: Set(new.user_agent.map(|ua| truncate(ua, 255))),
        client_addr: Set(new.client_addr.map(|a| truncate(a, 64))),
    }
    .insert(db)
    .await
}

/// A session, its user and the user's roles and permissions, in one query: the check every
/// authenticated request makes. One round trip instead of two (session and user, then roles)
/// matters most on SQLite, where each query is a hop to the connection's own thread. The join
/// yields one row per (role, permission) of the user, or one row with NULLs for a user without
/// roles; the session and user columns repeat, which is cheaper than a second query.
pub async fn find_with_user_and_grants(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<(Session, User, Vec<String>, Vec<String>)>, DbErr> {
    let query = Sessions::find_by_id(id.to_owned())
        .find_also_related(Users)
        .join(JoinType::LeftJoin, user_role::Relation::User.def().rev())
        .join(JoinType::LeftJoin, user_role::Relation::Role.def())
        .join(JoinType::LeftJoin, role::Relation::RolePermission.def())
        .join(JoinType::LeftJoin, role_permission::Relation::Permission.def())
        .column_as(role::Column::Name, "grant_role")
        .column_as(permission::Column::Resource, "grant_resource")
        .column_as(permission::Column::Action, "grant_action")
        .build(db.get_database_backend());
    let rows = db.query_all_raw(query).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let session = Session::from_query_result(first, SelectA.as_str())?;
    let Some(user) = User::from_query_result_optional(first, SelectB.as_str())? else {
        return Ok(None);
    };
    let mut grants = Vec::with_capacity(rows.len());
    for row in &rows {
        // A NULL role is the single row of a user without roles.
        if let Some(role) = row.try_get::<Option<String>>("", "grant_role")? {
            grants.push((
                role,
                row.try_get::<Option<String>>("", "grant_resource")?,
                row.try_get::<Option<String>>("", "grant_action")?,
            ));
        }
    }
    let (roles, permissions) = super::rbac::fold_grants(grants);
    Ok(Some((session, user, roles, permissions)))
}

fn truncate(mut s: String, max_chars: usize) -> String {
    if let Some((idx, _)) = s.char_indices().nth(max_chars) {
        s.truncate(idx);
    }
    s
}

/// Ends one session (idempotent).
pub async fn revoke(db: &impl ConnectionTrait, id: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    Sessions::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map(|_| ())
}

/// Ends every live session of the given users, except `keep`; answers how many ended.
pub async fn revoke_for_users(
    db: &impl ConnectionTrait,
    user_ids: &[i64],
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut query = Sessions::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::UserId.is_in(user_ids.iter().copied()))
        .filter(Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        query = query.filter(Column::Id.ne(keep));
    }
    Ok(query.exec(db).await?.rows_affected)
}

/// A user's sessions that are neither revoked nor expired, newest first.
pub async fn live_for_user(
    db: &impl ConnectionTrait,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Session>, DbErr> {
    Sessions::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::RevokedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .order_by_desc(Column::CreatedAt)
        .all(db)
        .await
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<Session>, DbErr> {
    Sessions::find_by_id(id.to_owned()).one(db).await
}

/// Records that tokens were just issued for the session, sliding its expiry.
pub async fn touch(
    db: &impl ConnectionTrait,
    id: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    Sessions::update_many()
        .col_expr(Column::LastUsedAt, Expr::value(now))
        .col_expr(Column::ExpiresAt, Expr::value(expires_at))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Stores the hash of a new refresh token for a session.
pub async fn insert_refresh(
    db: &impl ConnectionTrait,
    session_id: &str,
    token_hash: String,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    RefreshActive {
        session_id: Set(session_id.to_owned()),
        token_hash: Set(token_hash),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// A refresh token by its hash, with its session.
pub async fn find_refresh(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<(RefreshToken, Session)>, DbErr> {
    let found = RefreshTokens::find()
        .filter(RefreshColumn::TokenHash.eq(token_hash))
        .find_also_related(Sessions)
        .one(db)
        .await?;
    Ok(found.and_then(|(token, session)| session.map(|s| (token, s))))
}

/// Marks a refresh token spent, if nobody did first. `true` when this call spent it.
pub async fn spend_refresh(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = RefreshTokens::update_many()
        .col_expr(RefreshColumn::UsedAt, Expr::value(now))
        .filter(RefreshColumn::Id.eq(id))
        .filter(RefreshColumn::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn find_refresh_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<RefreshToken>, DbErr> {
    RefreshTokens::find_by_id(id).one(db).await
}
