//! Queries on `users`.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DbBackend, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable, PaginatorTrait, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, QueryTrait, SqlErr, Statement,
};

use super::entities::user::{self, ActiveModel, Column, Entity as Users, Model as User};
use super::sqlite_direct::SqliteDirect;
use super::{Confirmed, Direct};

/// The columns of a new user row.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub username: Option<String>,
    pub full_name: Option<String>,
    pub password_hash: String,
    pub is_active: bool,
    pub is_admin: bool,
}

impl NewUser {
    /// The lower-cased email and username the unique indexes hold, the same on every backend.
    pub(super) fn lowered(&self) -> (String, Option<String>) {
        (
            self.email.to_lowercase(),
            self.username.as_ref().map(|u| u.to_ascii_lowercase()),
        )
    }
}

/// Inserts a user. A duplicate email or username fails with the database's unique violation.
pub async fn insert(db: &impl ConnectionTrait, new: NewUser, now: DateTime<Utc>) -> Result<User, DbErr> {
    let (email_lower, username_lower) = new.lowered();
    ActiveModel {
        email_lower: Set(email_lower),
        email: Set(new.email),
        username_lower: Set(username_lower),
        username: Set(new.username),
        full_name: Set(new.full_name),
        password_hash: Set(new.password_hash),
        is_active: Set(new.is_active),
        is_admin: Set(new.is_admin),
        created_at: Set(now),
        updated_at: Set(now),
        last_login_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// The unique value a new user collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Email,
    Username,
}

impl Taken {
    /// Which of the two a database's unique-violation message names: PostgreSQL and MySQL
    /// name the index (`ux_users_email_lower`, `ux_users_username_lower`), SQLite the column.
    pub fn named_in(message: &str) -> Option<Self> {
        let message = message.to_lowercase();
        if message.contains("username") {
            Some(Self::Username)
        } else if message.contains("email") {
            Some(Self::Email)
        } else {
            None
        }
    }

    fn of(err: &DbErr) -> Option<Self> {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(message)) => Self::named_in(&message),
            _ => None,
        }
    }
}

/// Inserts a user and gives it every default role, all or nothing; `Err(Taken)` inside when
/// the email or username is taken, and nothing written. On PostgreSQL one statement does both
/// (one round trip instead of five); on a SQLite file one transaction on the direct writer
/// (`direct`, decision 101); elsewhere a transaction through sea-orm.
pub async fn insert_with_default_roles(
    db: &DatabaseConnection,
    direct: Option<&Arc<SqliteDirect>>,
    new: NewUser,
    now: DateTime<Utc>,
) -> Result<Result<User, Taken>, DbErr> {
    if let Some(direct) = direct {
        return Arc::clone(direct).insert_user(new, now).await;
    }
    let inserted = insert_with_default_roles_orm(db, new, now).await;
    match inserted {
        Err(err) => Taken::of(&err).map(Err).ok_or(err),
        Ok(user) => Ok(Ok(user)),
    }
}

async fn insert_with_default_roles_orm(
    db: &DatabaseConnection,
    new: NewUser,
    now: DateTime<Utc>,
) -> Result<User, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        let txn = super::begin(db).await?;
        let user = insert(&*txn, new, now).await?;
        super::rbac::grant_default_roles(&*txn, user.id).await?;
        txn.commit().await?;
        return Ok(user);
    }
    let (email_lower, username_lower) = new.lowered();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "WITH u AS (INSERT INTO users (email, email_lower, username, username_lower, full_name, \
                                       password_hash, is_active, is_admin, created_at, updated_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING *), \
              g AS (INSERT INTO user_roles (user_id, role_id) \
                    SELECT u.id, roles.id FROM u, roles WHERE roles.is_default) \
         SELECT * FROM u",
        [
            new.email.into(),
            email_lower.into(),
            new.username.into(),
            username_lower.into(),
            new.full_name.into(),
            new.password_hash.into(),
            new.is_active.into(),
            new.is_admin.into(),
            now.into(),
        ],
    );
    let row = super::pg_query_one(db, statement)
        .await?
        .ok_or(DbErr::RecordNotInserted)?;
    User::from_query_result(&row, "")
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<User>, DbErr> {
    Users::find_by_id(id).one(db).await
}

/// [`find`] outside a transaction, through [`Direct`] when it can (which shares a kept answer
/// rather than copying it). `confirmed`: what the request's auth lookup handed back, if anything.
pub async fn find_committed(
    db: &DatabaseConnection,
    direct: Option<&Direct>,
    id: i64,
    confirmed: Option<Confirmed>,
) -> Result<Option<Arc<User>>, DbErr> {
    if let Some(direct) = direct
        && let Some(found) = direct.user(id, confirmed).await
    {
        return Ok(found);
    }
    Ok(find(db, id).await?.map(Arc::new))
}

/// `SELECT` of every user column by id, in the entity's column order, for the direct lookups.
pub(super) fn by_id_sql(backend: DbBackend) -> &'static str {
    static POSTGRES: LazyLock<String> = LazyLock::new(|| select_where("id = $1"));
    static OTHERS: LazyLock<String> = LazyLock::new(|| select_where("id = ?"));
    match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &OTHERS,
    }
}

/// Every user column, in the entity's order, for statements that list them (`SELECT`,
/// `RETURNING`).
pub(super) fn column_list() -> &'static str {
    static LIST: LazyLock<String> =
        LazyLock::new(|| Column::iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "));
    &LIST
}

/// `SELECT` of every user column where `column` (one of [`login_key`]'s) equals the one
/// parameter, in the entity's column order, for the SQLite direct login lookup.
pub(super) fn by_login_sql_sqlite(column: Column) -> &'static str {
    static EMAIL: LazyLock<String> = LazyLock::new(|| select_where("email_lower = ?"));
    static USERNAME: LazyLock<String> = LazyLock::new(|| select_where("username_lower = ?"));
    match column {
        Column::EmailLower => &EMAIL,
        _ => &USERNAME,
    }
}

fn select_where(condition: &str) -> String {
    format!("SELECT {} FROM users WHERE {condition}", column_list())
}

/// Finds a user by email or username, ignoring letter case. Usernames cannot contain `@`, so
/// the two never collide.
pub async fn find_by_login(db: &impl ConnectionTrait, login: &str) -> Result<Option<User>, DbErr> {
    let (column, key) = login_key(login);
    Users::find().filter(column.eq(key)).one(db).await
}

/// The column a login is looked up in, and the value it must equal there.
pub(super) fn login_key(login: &str) -> (Column, String) {
    let key = login.trim().to_lowercase();
    let column = if key.contains('@') {
        Column::EmailLower
    } else {
        Column::UsernameLower
    };
    (column, key)
}

/// How `list` orders its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Email,
    Username,
    FullName,
    CreatedAt,
    LastLoginAt,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Case-insensitive substring of email, username or full name.
    pub search: Option<String>,
    pub active_only: bool,
    pub is_admin: Option<bool>,
    /// Holders of the role with this name.
    pub role: Option<String>,
    pub sort: Option<(SortKey, bool)>,
}

/// The text the PostgreSQL search index covers (migration m20261123_000002_search_gist): the
/// three searched columns in one string, so one trigram index scan finds the candidates. A
/// term can match across the separators, so the query keeps the exact per-column test too.
const SEARCH_TEXT_POSTGRES: &str =
    "(email_lower || ' ' || COALESCE(username_lower, '') || ' ' || LOWER(COALESCE(full_name, '')))";

fn condition(filter: &ListFilter, backend: DbBackend) -> Condition {
    let mut cond = Condition::all();
    if let Some(term) = filter.search.as_deref().filter(|t| !t.trim().is_empty()) {
        let term = term.trim().to_lowercase();
        let pattern = format!("%{}%", escape_like(&term));
        let like = || LikeExpr::new(pattern.clone()).escape('\\');
        if backend == DbBackend::Postgres {
            cond = cond.add(Expr::cust(SEARCH_TEXT_POSTGRES).like(like()));
        }
        // SQLite's trigram index (migration m20261130_000001_sqlite_search) finds the
        // candidates: the term as one FTS5 phrase, in which only `"` is special. It cannot
        // answer a term under three characters; those scan.
        if backend == DbBackend::Sqlite && term.chars().count() >= 3 {
            let phrase = format!("\"{}\"", term.replace('"', "\"\""));
            let candidates = Query::select()
                .expr(Expr::cust("rowid"))
                .from(Alias::new("users_search"))
                .and_where(Expr::cust_with_values("users_search MATCH ?", [phrase]))
                .to_owned();
            cond = cond.add(Column::Id.in_subquery(candidates));
        }
        // `email_lower` and `username_lower` are stored lower-cased, so they are matched as they
        // are; only `full_name` needs `LOWER`.
        cond = cond.add(
            Condition::any()
                .add(Expr::col(Column::EmailLower).like(like()))
                .add(Expr::col(Column::UsernameLower).like(like()))
                .add(Expr::expr(Func::lower(Expr::col(Column::FullName))).like(like())),
        );
    }
    if filter.active_only {
        cond = cond.add(Column::IsActive.eq(true));
    }
    if let Some(admin) = filter.is_admin {
        cond = cond.add(Column::IsAdmin.eq(admin));
    }
    if let Some(role) = &filter.role {
        let (ur, r) = (Alias::new("user_roles"), Alias::new("roles"));
        let holders = Query::select()
            .column((ur.clone(), Alias::new("user_id")))
            .from(ur.clone())
            .inner_join(
                r.clone(),
                Expr::col((r.clone(), Alias::new("id"))).equals((ur, Alias::new("role_id"))),
            )
            .and_where(Expr::col((r, Alias::new("name"))).eq(role.as_str()))
            .to_owned();
        cond = cond.add(Column::Id.in_subquery(holders));
    }
    cond
}

/// One page of users matching `filter`, and how many match in all.
pub async fn list(
    db: &DatabaseConnection,
    filter: &ListFilter,
    skip: u64,
    limit: u64,
) -> Result<(Vec<User>, u64), DbErr> {
    let backend = db.get_database_backend();
    let cond = condition(filter, backend);
    let (key, descending) = filter.sort.unwrap_or((SortKey::Id, false));
    let column = match key {
        SortKey::Id => Column::Id,
        SortKey::Email => Column::EmailLower,
        SortKey::Username => Column::UsernameLower,
        SortKey::FullName => Column::FullName,
        SortKey::CreatedAt => Column::CreatedAt,
        SortKey::LastLoginAt => Column::LastLoginAt,
    };
    let order = if descending {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    let mut page = Users::find().filter(cond.clone()).order_by(column, order.clone());
    if key != SortKey::Id {
        // A stable tie-breaker so pages never overlap.
        page = page.order_by(Column::Id, order);
    }
    let page = page.offset(skip).limit(limit);
    let count = Users::find()
        .filter(cond)
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "total");
    if backend == DbBackend::Postgres && filter.search.is_some() {
        let page = page.column_as(Expr::cust("COUNT(*) OVER ()"), "total");
        return search_postgres(db, page.build(backend), || count.build(backend), skip).await;
    }
    let total = count.into_tuple::<i64>().one(db).await?.unwrap_or(0);
    let rows = page.all(db).await?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// A search on PostgreSQL: one statement for the page and the count of all matches (a window
/// count, computed while the matches are in hand), run unnamed, so it is planned for the actual
/// pattern: a term most rows contain is better read by a table scan, a rare one through the
/// trigram index. (Before the window count, a named statement's generic plan read the table in
/// id order for every pattern: 881 ms at the 99th percentile with 100k users.) Only a page past
/// the last match needs a second statement for the count.
async fn search_postgres(
    db: &DatabaseConnection,
    page: Statement,
    count: impl FnOnce() -> Statement,
    skip: u64,
) -> Result<(Vec<User>, u64), DbErr> {
    use sea_orm::sqlx;
    let pool = db.get_postgres_connection_pool();
    let (sql, values) = super::sqlx_parts(page);
    let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
        .persistent(false)
        .fetch_all(pool)
        .await
        .map_err(super::sqlx_error)?;
    let mut total: i64 = 0;
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        let row = QueryResult::from(row);
        total = row.try_get("", "total")?;
        users.push(User::from_query_result(&row, "")?);
    }
    if users.is_empty() && skip > 0 {
        let (sql, values) = super::sqlx_parts(count());
        total = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), values)
            .persistent(false)
            .fetch_one(pool)
            .await
            .map_err(super::sqlx_error)?;
    }
    Ok((users, u64::try_from(total).unwrap_or(0)))
}

/// Saves changed columns, stamping `updated_at`.
pub async fn update(
    db: &impl ConnectionTrait,
    mut changes: ActiveModel,
    now: DateTime<Utc>,
) -> Result<User, DbErr> {
    changes.updated_at = Set(now);
    changes.update(db).await
}

pub async fn set_last_login(db: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
    Users::update_many()
        .col_expr(Column::LastLoginAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}

/// Replaces a password hash, only if it is still `old` (a concurrent change wins).
pub async fn set_password_hash(
    db: &impl ConnectionTrait,
    id: i64,
    old: &str,
    new: &str,
) -> Result<(), DbErr> {
    Users::update_many()
        .col_expr(Column::PasswordHash, Expr::value(new))
        .filter(Column::Id.eq(id))
        .filter(Column::PasswordHash.eq(old))
        .exec(db)
        .await
        .map(|_| ())
}

/// Deletes a user; their sessions go with them (foreign keys cascade).
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    Ok(Users::delete_by_id(id).exec(db).await?.rows_affected > 0)
}

/// The users among `ids` that exist.
pub async fn find_many(db: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<User>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Users::find()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await
}

pub async fn set_active_many(
    db: &impl ConnectionTrait,
    ids: &[i64],
    active: bool,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = Users::update_many()
        .col_expr(Column::IsActive, Expr::value(active))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Deletes the users in one statement, so a failure on any row deletes none.
pub async fn delete_many(db: &impl ConnectionTrait, ids: &[i64]) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(Users::delete_many()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?
        .rows_affected)
}

/// Active users with administrator rights: the `is_admin` flag, or a role granting `admin:all`.
pub async fn count_active_admins(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let (ur, rp, p) = (
        Alias::new("user_roles"),
        Alias::new("role_permissions"),
        Alias::new("permissions"),
    );
    let via_role = Query::select()
        .expr(Expr::val(1))
        .from(ur.clone())
        .inner_join(
            rp.clone(),
            Expr::col((rp.clone(), Alias::new("role_id"))).equals((ur.clone(), Alias::new("role_id"))),
        )
        .inner_join(
            p.clone(),
            Expr::col((p.clone(), Alias::new("id"))).equals((rp, Alias::new("permission_id"))),
        )
        .and_where(Expr::col((ur, Alias::new("user_id"))).equals((Users, Column::Id)))
        .and_where(Expr::col((p.clone(), Alias::new("resource"))).eq("admin"))
        .and_where(Expr::col((p, Alias::new("action"))).eq("all"))
        .to_owned();
    Users::find()
        .filter(Column::IsActive.eq(true))
        .filter(
            Condition::any()
                .add(Column::IsAdmin.eq(true))
                .add(Expr::exists(via_role)),
        )
        .count(db)
        .await
}

pub async fn any_admin(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    Ok(Users::find().filter(Column::IsAdmin.eq(true)).count(db).await? > 0)
}

/// The fields of `user` that can change, as an active model ready to be edited.
pub fn edit(user: User) -> ActiveModel {
    user::ActiveModel::from(user)
}

/// Escapes LIKE wildcards so a search for `50%` finds a literal percent sign.
fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }
}
