//! Queries on `sessions` and their `refresh_tokens`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};

use super::entities::refresh_token::{
    ActiveModel as RefreshActive, Column as RefreshColumn, Entity as RefreshTokens, Model as RefreshToken,
};
use super::entities::session::{ActiveModel, Column, Entity as Sessions, Model as Session};
use super::entities::user::{Entity as Users, Model as User};

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

/// A session and its user, in one query: the check every authenticated request makes.
pub async fn find_with_user(db: &impl ConnectionTrait, id: &str) -> Result<Option<(Session, User)>, DbErr> {
    let found = Sessions::find_by_id(id.to_owned())
        .find_also_related(Users)
        .one(db)
        .await?;
    Ok(found.and_then(|(session, user)| user.map(|u| (session, u))))
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
