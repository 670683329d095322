//! Queries on `sessions` and their `refresh_tokens`.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, FromQueryResult, IdenStatic, Iterable, JoinType, QueryFilter, QueryOrder, QueryResult,
    QuerySelect, QueryTrait, RelationTrait, SelectA, SelectB, SqlErr, Statement,
};

use super::Direct;
use super::entities::refresh_token::{
    ActiveModel as RefreshActive, Column as RefreshColumn, Entity as RefreshTokens, Model as RefreshToken,
};
use super::entities::session::{self, ActiveModel, Column, Entity as Sessions, Model as Session};
use super::entities::user::{Column as UserColumn, Model as User};
use super::sqlite_direct::{Opening, Rotation, SqliteDirect};

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
}

impl NewSession {
    /// The same session with its client's description cut to what the columns hold.
    fn bounded(self) -> Self {
        Self {
            user_agent: self.user_agent.map(|ua| truncate(ua, 255)),
            client_addr: self.client_addr.map(|a| truncate(a, 64)),
            ..self
        }
    }
}

pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewSession,
    now: DateTime<Utc>,
) -> Result<Session, DbErr> {
    let new = new.bounded();
    ActiveModel {
        id: Set(uuid::Uuid::new_v4().simple().to_string()),
        user_id: Set(new.user_id),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        user_agent: Set(new.user_agent),
        client_addr: Set(new.client_addr),
    }
    .insert(db)
    .await
}

/// A session's user and what the user's roles grant. Shared, not copied: a kept answer and the
/// requests it serves hold the same one.
#[derive(Debug)]
pub struct Grant {
    pub user: User,
    /// Names of the user's roles, sorted.
    pub roles: Vec<String>,
    /// `resource:action` of every permission those roles grant, sorted.
    pub permissions: Vec<String>,
}

/// What an authenticated request needs to know about its session.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub grant: Arc<Grant>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the lookup confirmed, when [`Direct`] answered it: the request's later lookups
    /// pass it on (see [`super::Confirmed`]).
    pub confirmed: Option<super::Confirmed>,
}

/// A session's state, its user and the user's roles and permissions, in one query returning
/// one row: the check every authenticated request makes. The roles and permissions come back
/// as JSON arrays from two correlated subqueries, so an administrator with dozens of
/// permissions still costs one row. The statement text is built once per backend from the
/// entity's columns. It runs [`Direct`] when it can; `now` is the time the caller checks the
/// session's expiry against.
pub async fn find_with_user_and_grants(
    db: &impl ConnectionTrait,
    direct: Option<&Direct>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<SessionGrant>, DbErr> {
    if let Some(direct) = direct
        && let Some(found) = direct.session_grant(id, now).await
    {
        return Ok(found);
    }
    let backend = db.get_database_backend();
    let statement = Statement::from_sql_and_values(backend, auth_sql(backend), [id.into()]);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let list = |column: &str| -> Result<Vec<String>, DbErr> {
        let json = row.try_get::<Option<String>>("", column)?;
        parse_name_list(json.as_deref()).map_err(|e| DbErr::Type(format!("{column}: {e}")))
    };
    Ok(Some(SessionGrant {
        grant: Arc::new(Grant {
            user: User::from_query_result(&row, "")?,
            roles: list("grant_roles")?,
            permissions: list("grant_permissions")?,
        }),
        expires_at: row.try_get("", "session_expires_at")?,
        revoked_at: row.try_get("", "session_revoked_at")?,
        confirmed: None,
    }))
}

/// Names from a JSON array of strings (`NULL` when there were none), sorted, without repeats.
pub(super) fn parse_name_list(json: Option<&str>) -> Result<Vec<String>, serde_json::Error> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let mut items: Vec<String> = serde_json::from_str(json)?;
    items.sort_unstable();
    items.dedup();
    Ok(items)
}

/// The statement behind [`find_with_user_and_grants`] for `backend`.
pub(super) fn auth_sql(backend: DbBackend) -> &'static str {
    static POSTGRES: LazyLock<String> = LazyLock::new(|| build_auth_sql(DbBackend::Postgres));
    static MYSQL: LazyLock<String> = LazyLock::new(|| build_auth_sql(DbBackend::MySql));
    static SQLITE: LazyLock<String> = LazyLock::new(|| build_auth_sql(DbBackend::Sqlite));
    match backend {
        DbBackend::Postgres => &POSTGRES,
        DbBackend::MySql => &MYSQL,
        _ => &SQLITE,
    }
}

fn build_auth_sql(backend: DbBackend) -> String {
    // Each backend spells "a JSON array of these values, as text" and "a || b" its own way.
    let (agg_open, agg_close, placeholder) = match backend {
        DbBackend::Postgres => ("json_agg(", ")::text", "$1"),
        DbBackend::MySql => ("CAST(JSON_ARRAYAGG(", ") AS CHAR)", "?"),
        _ => ("json_group_array(", ")", "?"),
    };
    let permission = match backend {
        DbBackend::Sqlite => "p.resource || ':' || p.action",
        _ => "CONCAT(p.resource, ':', p.action)",
    };
    let user_columns = UserColumn::iter()
        .map(|c| format!("u.{}", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {user_columns}, s.expires_at AS session_expires_at, s.revoked_at AS session_revoked_at, \
         (SELECT {agg_open}r.name{agg_close} FROM user_roles ur \
            JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id) AS grant_roles, \
         (SELECT {agg_open}{permission}{agg_close} FROM user_roles ur \
            JOIN role_permissions rp ON rp.role_id = ur.role_id \
            JOIN permissions p ON p.id = rp.permission_id WHERE ur.user_id = u.id) AS grant_permissions \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = {placeholder}"
    )
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

/// What a successful login writes, all or nothing: a new session, its first refresh token
/// (`refresh_hash`, expiring with the session) and the user's `last_login_at`; answers the
/// session's id, or `None` (and nothing written) when the user is gone, deleted while their
/// password was being checked. On PostgreSQL one statement does all three (one round trip
/// instead of five: its server work is a share of every login's CPU on a small machine); on a
/// SQLite file one transaction through `direct` on a blocking thread (one hand-off instead of
/// five to sqlx's connection thread, each of which preempts a password hash on a small
/// machine); elsewhere a transaction.
///
/// PostgreSQL commits that statement without waiting for its WAL to reach the disk
/// (`synchronous_commit` off for its own transaction only, decision 103): a crash of the server
/// or its machine within a fraction of a second may forget the new session, whose holder then
/// logs in again, and the login's `last_login_at`; the database stays consistent. The flush was
/// a fifth of the server's CPU for a login on a 2-core machine. SQLite commits every write
/// that way already (`synchronous=NORMAL` with its WAL).
pub async fn open_for_login(
    db: &DatabaseConnection,
    direct: Option<&Arc<SqliteDirect>>,
    new: NewSession,
    refresh_hash: String,
    now: DateTime<Utc>,
) -> Result<Option<String>, DbErr> {
    if let Some(direct) = direct {
        let new = new.bounded();
        let opening = Opening {
            session_id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: new.user_id,
            now,
            expires_at: new.expires_at,
            user_agent: new.user_agent,
            client_addr: new.client_addr,
            refresh_hash,
        };
        let id = opening.session_id.clone();
        let opened = Arc::clone(direct).open_session(opening).await?;
        return Ok(opened.then_some(id));
    }
    if db.get_database_backend() != DbBackend::Postgres {
        let txn = super::begin(db).await?;
        let user_id = new.user_id;
        let expires_at = new.expires_at;
        let session = match insert(&*txn, new, now).await {
            Ok(session) => session,
            // The user is gone; the transaction rolls back as it drops.
            Err(err) if matches!(err.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) => {
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        insert_refresh(&*txn, &session.id, refresh_hash, now, expires_at).await?;
        super::users::set_last_login(&*txn, user_id, now).await?;
        txn.commit().await?;
        return Ok(Some(session.id));
    }
    let new = new.bounded();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "WITH u AS (UPDATE users SET last_login_at = $3 WHERE id = $2 RETURNING id), \
              s AS (INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, \
                                          user_agent, client_addr) \
                    SELECT $1, id, $3, $3, $4, NULL, $5, $6 FROM u RETURNING id), \
              r AS (INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at, used_at) \
                    SELECT id, $7, $3, $4, NULL FROM s) \
         SELECT COUNT(*) AS opened, set_config('synchronous_commit', 'off', true) AS relaxed FROM s",
        [
            id.clone().into(),
            new.user_id.into(),
            now.into(),
            new.expires_at.into(),
            new.user_agent.into(),
            new.client_addr.into(),
            refresh_hash.into(),
        ],
    );
    let opened = match super::pg_query_one(db, statement).await? {
        Some(row) => row.try_get::<i64>("", "opened")? == 1,
        None => false,
    };
    Ok(opened.then_some(id))
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

/// A refresh token by its hash, with its session and whether the session's user is active: one
/// query for what a refresh checks before it writes.
pub async fn find_refresh(
    db: &impl ConnectionTrait,
    direct: Option<&SqliteDirect>,
    token_hash: &str,
) -> Result<Option<(RefreshToken, Session, bool)>, DbErr> {
    if let Some(found) = direct.and_then(|direct| direct.refresh_token(token_hash)) {
        return Ok(found);
    }
    let query = find_refresh_query(db.get_database_backend(), token_hash);
    let Some(row) = db.query_one_raw(query).await? else {
        return Ok(None);
    };
    refresh_from_row(&row)
}

fn find_refresh_query(backend: DbBackend, token_hash: &str) -> Statement {
    RefreshTokens::find()
        .filter(RefreshColumn::TokenHash.eq(token_hash))
        .find_also_related(Sessions)
        .join(JoinType::InnerJoin, session::Relation::User.def())
        .column_as(UserColumn::IsActive, "user_is_active")
        .build(backend)
}

fn refresh_from_row(row: &QueryResult) -> Result<Option<(RefreshToken, Session, bool)>, DbErr> {
    let token = RefreshToken::from_query_result(row, SelectA.as_str())?;
    let Some(session) = Session::from_query_result_optional(row, SelectB.as_str())? else {
        return Ok(None);
    };
    Ok(Some((token, session, row.try_get("", "user_is_active")?)))
}

/// What a refresh found by the presented token's hash.
pub struct FoundRefresh {
    pub token: RefreshToken,
    pub session: Session,
    pub user_active: bool,
    /// `Some(true)` when the lookup also rotated the token (PostgreSQL does both in one
    /// statement), `Some(false)` when it tried and the token was not live or someone spent it
    /// first, `None` when it did not try: the caller rotates with [`rotate_refresh`].
    pub rotated: Option<bool>,
}

/// Looks up a refresh token by its hash and, on PostgreSQL, rotates it in the same statement
/// when it is live: spent, successor `successor_hash` stored, session slid to `expires_at`.
/// "Live" is the test the refresh service applies to what this returns: unspent, token and
/// session unexpired at `now`, session not revoked, user active.
pub async fn find_refresh_and_rotate(
    db: &DatabaseConnection,
    direct: Option<&SqliteDirect>,
    token_hash: &str,
    successor_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Option<FoundRefresh>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        let found = find_refresh(db, direct, token_hash).await?;
        return Ok(found.map(|(token, session, user_active)| FoundRefresh {
            token,
            session,
            user_active,
            rotated: None,
        }));
    }
    // One round trip instead of two: the parts of a statement share one snapshot and commit
    // together; a concurrent rotation of the same token waits on its row lock, then finds it
    // spent and leaves `spent` at 0.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let found = find_refresh_query(DbBackend::Postgres, "").sql;
        let (token, session) = (SelectA.as_str(), SelectB.as_str());
        format!(
            "WITH found AS ({found}), \
             spent AS ( \
               UPDATE refresh_tokens SET used_at = $2 \
               WHERE used_at IS NULL AND id = (SELECT \"{token}id\" FROM found \
                 WHERE \"{token}used_at\" IS NULL AND \"{token}expires_at\" > $2 \
                   AND \"{session}expires_at\" > $2 AND \"{session}revoked_at\" IS NULL \
                   AND user_is_active) \
               RETURNING session_id), \
             successor AS ( \
               INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at, used_at) \
               SELECT session_id, $3, $2, $4, NULL FROM spent), \
             touched AS ( \
               UPDATE sessions SET last_used_at = $2, expires_at = $4 \
               WHERE id IN (SELECT session_id FROM spent)) \
             SELECT found.*, (SELECT COUNT(*) FROM spent) AS spent FROM found"
        )
    });
    let values = [
        token_hash.into(),
        now.into(),
        successor_hash.into(),
        expires_at.into(),
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, SQL.as_str(), values);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let spent = row.try_get::<i64>("", "spent")?;
    Ok(
        refresh_from_row(&row)?.map(|(token, session, user_active)| FoundRefresh {
            token,
            session,
            user_active,
            rotated: Some(spent == 1),
        }),
    )
}

/// Marks a refresh token spent, if nobody did first. `true` when this call spent it.
async fn spend_refresh(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = RefreshTokens::update_many()
        .col_expr(RefreshColumn::UsedAt, Expr::value(now))
        .filter(RefreshColumn::Id.eq(id))
        .filter(RefreshColumn::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Spends refresh token `spent` of session `session_id`, stores its successor (`token_hash`)
/// and slides the session's expiry: all of it, and only if nobody spent the token first
/// (`false` then, and nothing is written). PostgreSQL rotates in [`find_refresh_and_rotate`].
pub async fn rotate_refresh(
    db: &DatabaseConnection,
    direct: Option<&Arc<SqliteDirect>>,
    spent: i64,
    session_id: &str,
    token_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if let Some(direct) = direct {
        let rotation = Rotation {
            spent,
            session_id: session_id.to_owned(),
            token_hash: token_hash.to_owned(),
            now,
            expires_at,
        };
        return Arc::clone(direct).rotate_refresh(rotation).await;
    }
    let txn = super::begin(db).await?;
    if !spend_refresh(&*txn, spent, now).await? {
        txn.rollback().await?;
        return Ok(false);
    }
    insert_refresh(&*txn, session_id, token_hash.to_owned(), now, expires_at).await?;
    touch(&*txn, session_id, now, expires_at).await?;
    txn.commit().await?;
    Ok(true)
}

pub async fn find_refresh_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<RefreshToken>, DbErr> {
    RefreshTokens::find_by_id(id).one(db).await
}
