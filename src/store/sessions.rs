//! Queries on `sessions`.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use super::entities::session::{ActiveModel, Entity as Sessions, Model as Session};
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
