//! `users-api import`: bringing the users of an existing UserVault (Flask) or QuizApp
//! (FastAPI) database over, password hashes and all, so nobody has to reset a password.
//!
//! Everything is written in one transaction: an error (or `--dry-run`) writes nothing. Rows
//! that cannot be imported are skipped and reported with the reason. Running it again imports
//! nothing new: users whose email or username already exists are skipped.

use std::collections::HashSet;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{
    ActiveValue::Set, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    QueryResult, Statement,
};

use crate::auth::legacy;
use crate::domain::profile::{MAX_BIO_CHARS, MAX_LOCATION_CHARS, parse_phone, parse_text, parse_url};
use crate::domain::{Email, Username, parse_full_name};
use crate::services::Core;
use crate::store::entities::user;

/// Which application's schema the source database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Flask tutorial / UserVault: table `user` (id, username, email, password_hash).
    UserVault,
    /// FastAPI QuizApp (seeds 003/004): table `users` with profile fields.
    QuizApp,
}

#[derive(Debug, Default)]
pub struct Report {
    pub read: usize,
    pub imported: usize,
    /// `(row description, reason)`
    pub skipped: Vec<(String, String)>,
    /// Profile values that did not pass validation and were left out.
    pub dropped_fields: usize,
}

/// One source row, every column read as text.
#[derive(Debug, Default)]
struct SourceRow {
    id: Option<String>,
    email: Option<String>,
    username: Option<String>,
    full_name: Option<String>,
    password_hash: Option<String>,
    is_active: Option<String>,
    is_admin: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
    location: Option<String>,
    website: Option<String>,
    phone_number: Option<String>,
    birth_date: Option<String>,
    preferences: Option<String>,
    created_at: Option<String>,
}

/// Canonical field → the column names it may have in the source (first match wins).
const FIELDS: &[(&str, &[&str])] = &[
    ("id", &["id"]),
    ("email", &["email"]),
    ("username", &["username"]),
    ("full_name", &["full_name", "name"]),
    ("password_hash", &["password_hash", "hashed_password"]),
    ("is_active", &["is_active"]),
    ("is_admin", &["is_admin", "is_superuser"]),
    ("bio", &["bio"]),
    ("avatar_url", &["avatar_url"]),
    ("location", &["location"]),
    ("website", &["website"]),
    ("phone_number", &["phone_number", "phone"]),
    ("birth_date", &["birth_date"]),
    ("preferences", &["preferences"]),
    ("created_at", &["created_at"]),
];

/// Opens the source read-only where the backend allows it.
async fn open_source(url: &str) -> anyhow::Result<DatabaseConnection> {
    let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
        format!("{url}{}mode=ro", if url.contains('?') { '&' } else { '?' })
    } else {
        url.to_owned()
    };
    let mut opts = ConnectOptions::new(url.clone());
    opts.max_connections(2).sqlx_logging(false);
    Database::connect(opts)
        .await
        .with_context(|| format!("opening the source database {}", crate::store::redact_url(&url)))
}

async fn strings(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<String>> {
    let backend = db.get_database_backend();
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .collect())
}

async fn tables(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        DbBackend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()"
        }
        _ => "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
    };
    strings(db, sql).await
}

async fn columns(db: &DatabaseConnection, table: &str) -> anyhow::Result<Vec<String>> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        DbBackend::Postgres => format!(
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
        _ => format!(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}'"
        ),
    };
    strings(db, &sql).await
}

/// Decides the format (when not given) and the table it lives in.
async fn detect(db: &DatabaseConnection, format: Option<Format>) -> anyhow::Result<(Format, &'static str)> {
    let tables = tables(db).await?;
    let has = |name: &str| tables.iter().any(|t| t == name);
    match format {
        Some(Format::UserVault) if has("user") => Ok((Format::UserVault, "user")),
        Some(Format::QuizApp) if has("users") => Ok((Format::QuizApp, "users")),
        Some(Format::UserVault) => bail!("the source has no `user` table (UserVault format)"),
        Some(Format::QuizApp) => bail!("the source has no `users` table (QuizApp format)"),
        None if has("user") => Ok((Format::UserVault, "user")),
        None if has("users") => Ok((Format::QuizApp, "users")),
        None => bail!("found neither a `user` (UserVault) nor a `users` (QuizApp) table in the source"),
    }
}

async fn read_rows(db: &DatabaseConnection, table: &str) -> anyhow::Result<Vec<SourceRow>> {
    let available = columns(db, table).await?;
    let backend = db.get_database_backend();
    let text = if backend == DbBackend::MySql {
        "CHAR"
    } else {
        "TEXT"
    };
    let quote = |c: &str| {
        if backend == DbBackend::MySql {
            format!("`{c}`")
        } else {
            format!("\"{c}\"")
        }
    };
    let mut select = Vec::new();
    for (field, candidates) in FIELDS {
        if let Some(col) = candidates.iter().find(|c| available.iter().any(|a| a == *c)) {
            select.push(format!("CAST({} AS {text}) AS {field}", quote(col)));
        }
    }
    for required in ["email", "password_hash"] {
        if !select.iter().any(|s| s.ends_with(&format!(" AS {required}"))) {
            bail!("the source table `{table}` has no {required} column");
        }
    }
    let order = if available.iter().any(|a| a == "id") {
        format!(" ORDER BY {}", quote("id"))
    } else {
        String::new()
    };
    let sql = format!("SELECT {} FROM {}{order}", select.join(", "), quote(table));
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .context("reading the source users")?;
    Ok(rows.iter().map(source_row).collect())
}

fn source_row(r: &QueryResult) -> SourceRow {
    let get = |name: &str| r.try_get::<Option<String>>("", name).ok().flatten();
    SourceRow {
        id: get("id"),
        email: get("email"),
        username: get("username"),
        full_name: get("full_name"),
        password_hash: get("password_hash"),
        is_active: get("is_active"),
        is_admin: get("is_admin"),
        bio: get("bio"),
        avatar_url: get("avatar_url"),
        location: get("location"),
        website: get("website"),
        phone_number: get("phone_number"),
        birth_date: get("birth_date"),
        preferences: get("preferences"),
        created_at: get("created_at"),
    }
}

fn truthy(v: Option<&str>, default: bool) -> bool {
    match v.map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) => matches!(s.as_str(), "1" | "t" | "true" | "yes"),
        None => default,
    }
}

fn timestamp(v: Option<&str>) -> Option<DateTime<Utc>> {
    let v = v?.trim();
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%#z")
                .map(|d| d.with_timezone(&Utc))
                .ok()
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f")
                .map(|d| d.and_utc())
                .ok()
        })
}

/// Reads the source and imports its users into `core`'s database. `progress(done, total)` is
/// called as rows are processed.
pub async fn run(
    core: &Core,
    from: &str,
    format: Option<Format>,
    dry_run: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<(Format, Report)> {
    let source = open_source(from).await?;
    let (format, table) = detect(&source, format).await?;
    let rows = read_rows(&source, table).await?;
    source.close().await.ok();

    let mut report = Report {
        read: rows.len(),
        ..Report::default()
    };
    let txn = crate::store::begin(&core.db).await?;
    let existing = txn
        .query_all(
            &Query::select()
                .columns([Alias::new("email_lower"), Alias::new("username_lower")])
                .from(Alias::new("users"))
                .to_owned(),
        )
        .await?;
    let mut emails: HashSet<String> = HashSet::new();
    let mut usernames: HashSet<String> = HashSet::new();
    for row in &existing {
        if let Ok(e) = row.try_get::<String>("", "email_lower") {
            emails.insert(e);
        }
        if let Ok(Some(u)) = row.try_get::<Option<String>>("", "username_lower") {
            usernames.insert(u);
        }
    }
    let max_before: i64 = txn
        .query_one(
            &Query::select()
                .expr(Func::max(Expr::col(Alias::new("id"))))
                .from(Alias::new("users"))
                .to_owned(),
        )
        .await?
        .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
        .unwrap_or(0);

    let now = core.clock.now();
    let today = now.date_naive();
    let total = rows.len() as u64;
    let mut batch = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        let label = format!(
            "row {} ({})",
            row.id.clone().unwrap_or_else(|| (index + 1).to_string()),
            row.email.as_deref().unwrap_or("no email")
        );
        match prepare(
            row,
            today,
            now,
            &mut emails,
            &mut usernames,
            &mut report.dropped_fields,
        ) {
            Ok(model) => batch.push(model),
            Err(reason) => report.skipped.push((label, reason)),
        }
        if batch.len() == 500 {
            report.imported += batch.len();
            user::Entity::insert_many(std::mem::take(&mut batch))
                .exec(&*txn)
                .await
                .context("writing users")?;
        }
        if index % 1000 == 999 {
            progress(index as u64 + 1, total);
        }
    }
    if !batch.is_empty() {
        report.imported += batch.len();
        user::Entity::insert_many(batch)
            .exec(&*txn)
            .await
            .context("writing users")?;
    }
    progress(total, total);
    crate::store::rbac::grant_default_roles_after(&*txn, max_before)
        .await
        .context("granting default roles")?;
    if dry_run {
        txn.rollback().await?;
        return Ok((format, report));
    }
    txn.commit().await?;
    refresh_statistics(&core.db).await;
    Ok((format, report))
}

/// After a bulk import the planner's statistics still describe the table as it was, and
/// PostgreSQL keeps the new rows' trigram entries in a pending list that every search scans,
/// until autovacuum gets to it. Both are brought up to date here so that the first searches
/// use the indexes. The import has already committed; a failure here only costs speed.
async fn refresh_statistics(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => "VACUUM (ANALYZE) users",
        DbBackend::MySql => "ANALYZE TABLE users",
        _ => "ANALYZE users",
    };
    if let Err(err) = db.execute_unprepared(sql).await {
        tracing::warn!(error = %err, "could not refresh the users table's statistics after the import");
    }
}

/// Turns a source row into a new user, or says why it cannot be imported.
fn prepare(
    row: SourceRow,
    today: NaiveDate,
    now: DateTime<Utc>,
    emails: &mut HashSet<String>,
    usernames: &mut HashSet<String>,
    dropped: &mut usize,
) -> Result<user::ActiveModel, String> {
    let email = Email::parse(row.email.as_deref().unwrap_or_default())
        .map_err(|e| format!("invalid email: {}", e.msg))?;
    let username = match row.username.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(Username::parse(u).map_err(|e| format!("username {u:?} cannot be used: {}", e.msg))?),
        None => None,
    };
    let hash = row.password_hash.unwrap_or_default();
    legacy::scheme_of(&hash)?;
    if emails.contains(&email.normalized()) {
        return Err("a user with this email already exists".into());
    }
    if let Some(u) = &username
        && usernames.contains(&u.normalized())
    {
        return Err(format!("username {:?} already exists", u.as_str()));
    }
    emails.insert(email.normalized());
    if let Some(u) = &username {
        usernames.insert(u.normalized());
    }

    let mut keep = |value: Option<String>, check: &dyn Fn(&str) -> bool| match value {
        Some(v) if !v.trim().is_empty() && check(&v) => Some(v.trim().to_owned()),
        Some(v) if !v.trim().is_empty() => {
            *dropped += 1;
            None
        }
        _ => None,
    };
    let bio = keep(row.bio, &|v| parse_text(v, MAX_BIO_CHARS).is_ok());
    let location = keep(row.location, &|v| parse_text(v, MAX_LOCATION_CHARS).is_ok());
    let avatar_url = keep(row.avatar_url, &|v| parse_url(v).is_ok());
    let website = keep(row.website, &|v| parse_url(v).is_ok());
    let phone_number = keep(row.phone_number, &|v| parse_phone(v).is_ok());
    let full_name = keep(row.full_name, &|v| parse_full_name(v).is_ok());
    let preferences = keep(row.preferences, &|v| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(v).is_ok()
    });
    let birth_date = row
        .birth_date
        .and_then(|d| NaiveDate::parse_from_str(d.trim().get(..10).unwrap_or_default(), "%Y-%m-%d").ok())
        .filter(|d| *d < today);
    let created_at = timestamp(row.created_at.as_deref()).unwrap_or(now);

    Ok(user::ActiveModel {
        email_lower: Set(email.normalized()),
        email: Set(email.as_str().to_owned()),
        username_lower: Set(username.as_ref().map(Username::normalized)),
        username: Set(username.map(|u| u.as_str().to_owned())),
        full_name: Set(full_name),
        password_hash: Set(hash),
        is_active: Set(truthy(row.is_active.as_deref(), true)),
        is_admin: Set(truthy(row.is_admin.as_deref(), false)),
        created_at: Set(created_at),
        updated_at: Set(now),
        last_login_at: Set(None),
        bio: Set(bio),
        avatar_url: Set(avatar_url),
        location: Set(location),
        website: Set(website),
        phone_number: Set(phone_number),
        birth_date: Set(birth_date),
        preferences: Set(preferences),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_timestamps_parse_from_every_backend_text() {
        assert!(truthy(Some("t"), false) && truthy(Some("1"), false) && truthy(Some("true"), false));
        assert!(!truthy(Some("f"), true) && !truthy(Some("0"), true));
        assert!(truthy(None, true));
        for ts in [
            "2024-05-01 10:00:00",
            "2024-05-01 10:00:00.123456",
            "2024-05-01T10:00:00Z",
            "2024-05-01 10:00:00+00",
        ] {
            assert!(timestamp(Some(ts)).is_some(), "{ts}");
        }
    }
}
