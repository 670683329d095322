//! SQLite work on the calling thread, for what nearly every request does: the auth lookup, a
//! user by id, and a refresh-token rotation; and a login's lookup and writes, and a registration.
//!
//! sqlx gives each SQLite connection a thread of its own: a query is a hand-off to that thread
//! and back, once more per row, plus a checkout from the async pool. A lookup by key takes a
//! few microseconds inside SQLite, much less than those hand-offs on a two-core machine. The
//! lookups here run with rusqlite, on the async worker that asks, from a small stack of
//! connections that refuse writes (`query_only`) and never wait: in WAL mode a reader does not
//! wait for the writer, and a busy timeout of zero makes the rare reader that would (WAL
//! recovery) fail at once instead of sleeping on the worker.
//!
//! The auth lookup and the user lookup keep their answers while the file stands still (decision
//! 92). Before each, the connection asks SQLite's `PRAGMA data_version`, which changes when any
//! other connection, of this process or another, has committed since that connection last
//! asked; a change, or a connection that has never asked, forgets everything kept. An answer
//! is kept only if nothing was forgotten between that question and its read, so nothing is
//! served that a commit before the question could have changed. Answers of "none" are never
//! kept. The auth lookup hands back the generation its question left standing ([`Confirmed`]);
//! the user lookup of the same request serves an answer kept at that generation without asking
//! again, as the PostgreSQL lookups do with their epoch (decision 93).
//!
//! Each lookup gives exactly what the sea-orm query would give, or nothing: when a read fails
//! for any reason (busy, a value stored in a form not parsed here, a file that went away) the
//! caller gets `None` and asks sqlx, which waits for locks and reports errors the usual way.
//! Every statement is reset when its row has been read, so no read transaction outlives its
//! lookup and each lookup sees every commit made before it.
//!
//! A rotation is one write transaction of three statements. It runs on a blocking thread with
//! a connection of its own, in the database's [write turn](super::write_turn) like any other
//! write transaction of this process, and writes timestamps exactly as sqlx does.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use sea_orm::Iterable;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, RuntimeErr};

use super::Confirmed;
use super::entities::login_throttle::Model as Counter;
use super::entities::refresh_token::Model as RefreshToken;
use super::entities::session::Model as Session;
use super::entities::user::{Column as UserColumn, Model as User};
use super::sessions::{self, Grant, SessionGrant};
use super::users::{self, NewUser, Taken};

/// Connections kept open between lookups; more are opened when more lookups run at once.
const IDLE_CONNECTIONS: usize = 8;
/// Answers kept of each kind, at most; when full, all of that kind are forgotten.
const KEEP: usize = 4096;

/// A database file's direct connections: a stack of read connections and one writer.
pub struct SqliteDirect {
    path: PathBuf,
    idle: Mutex<Vec<Reader>>,
    /// Answers of the auth and user lookups, while nobody has committed (see the module docs).
    kept: Mutex<Kept>,
    /// Lookups answered from `kept`, for tests.
    kept_served: AtomicU64,
    /// `PRAGMA data_version` questions asked, for tests.
    version_checks: AtomicU64,
    /// The connection the direct writes (refresh rotation, a login's session, a registration)
    /// use, between writes.
    writer: Mutex<Option<Connection>>,
    /// The file's write turn, shared with `store::begin`.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for SqliteDirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDirect")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteDirect {
    /// Direct connections for the file behind `db`; `None` unless `db` is a SQLite database in
    /// a file (an in-memory database is private to the connection that made it).
    pub fn for_database(db: &DatabaseConnection) -> Option<Arc<Self>> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return None;
        }
        let path = super::sqlite_file(db);
        let name = path.to_string_lossy();
        if name.is_empty() || name.starts_with(":memory:") || name.starts_with("file:") {
            return None;
        }
        Some(Arc::new(Self {
            path,
            idle: Mutex::new(Vec::new()),
            kept: Mutex::default(),
            kept_served: AtomicU64::new(0),
            version_checks: AtomicU64::new(0),
            writer: Mutex::new(None),
            turn: super::turn_of(db),
        }))
    }

    /// A session's state, its user and the user's grants: the same answer as
    /// [`sessions::find_with_user_and_grants`], or `None` to ask it instead. The answer carries
    /// the generation it was confirmed at.
    pub fn session_grant(&self, session_id: &str) -> Option<Option<SessionGrant>> {
        self.read(|reader| {
            let generation = self.confirm(reader)?;
            let confirmed = Some(Confirmed(generation));
            if let Some(grant) = self.kept_answer(|kept| kept.grants.get(session_id)) {
                return Ok(Some(SessionGrant { confirmed, ..grant }));
            }
            let sql = sessions::auth_sql(DbBackend::Sqlite);
            let found = reader
                .conn
                .prepare_cached(sql)?
                .query_row([session_id], |row| {
                    // After the user's columns: the session's expiry and revocation, then the
                    // two name lists (`sessions::auth_sql`).
                    let after = user_columns();
                    Ok(SessionGrant {
                        grant: Arc::new(Grant {
                            user: user(row)?,
                            roles: list(row, after + 2)?,
                            permissions: list(row, after + 3)?,
                        }),
                        expires_at: timestamp(row, after)?,
                        revoked_at: optional_timestamp(row, after + 1)?,
                        confirmed,
                    })
                })
                .optional()?;
            if let Some(grant) = &found {
                self.keep(
                    generation,
                    |kept| &mut kept.grants,
                    session_id.to_owned(),
                    grant.clone(),
                );
            }
            Ok(found)
        })
    }

    /// A user by id, as committed: the same answer as [`super::users::find`] outside a
    /// transaction, or `None` to ask it instead. `confirmed`: what this request's auth lookup
    /// confirmed, if it ran here; an answer kept at that generation is served as it stands.
    pub fn user(&self, id: i64, confirmed: Option<Confirmed>) -> Option<Option<Arc<User>>> {
        if let Some(Confirmed(generation)) = confirmed
            && let Some(found) =
                self.kept_answer(|kept| kept.users.get(&id).filter(|_| kept.generation == generation))
        {
            return Some(Some(found));
        }
        self.read(|reader| {
            let generation = self.confirm(reader)?;
            if let Some(found) = self.kept_answer(|kept| kept.users.get(&id)) {
                return Ok(Some(found));
            }
            let found = reader
                .conn
                .prepare_cached(super::users::by_id_sql(DbBackend::Sqlite))?
                .query_row([id], user)
                .optional()?
                .map(Arc::new);
            if let Some(found) = &found {
                self.keep(generation, |kept| &mut kept.users, id, Arc::clone(found));
            }
            Ok(found)
        })
    }

    /// Asks the connection whether another connection has committed since it last asked, and
    /// forgets everything kept if one has, or if this connection has never asked (what was
    /// committed before it opened is unknown to it). Returns the generation of what is kept
    /// now: an answer read after this may be kept only while that generation stands.
    fn confirm(&self, reader: &mut Reader) -> rusqlite::Result<i64> {
        self.version_checks.fetch_add(1, Ordering::Relaxed);
        let version: i64 = reader
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        let mut kept = self.kept();
        if reader.seen != Some(version) {
            kept.generation += 1;
            kept.grants.clear();
            kept.users.clear();
            reader.seen = Some(version);
        }
        Ok(kept.generation)
    }

    /// A kept answer (cheap to clone: what it holds is shared).
    fn kept_answer<T: Clone>(&self, find: impl FnOnce(&Kept) -> Option<&T>) -> Option<T> {
        let found = find(&self.kept()).cloned()?;
        self.kept_served.fetch_add(1, Ordering::Relaxed);
        Some(found)
    }

    /// Keeps `answer`, read after a [`Self::confirm`] that returned `generation`, unless
    /// something has been forgotten since.
    fn keep<K: Eq + Hash, T>(
        &self,
        generation: i64,
        map: fn(&mut Kept) -> &mut HashMap<K, T>,
        key: K,
        answer: T,
    ) {
        let mut kept = self.kept();
        if kept.generation != generation {
            return;
        }
        let map = map(&mut kept);
        if map.len() >= KEEP {
            map.clear();
        }
        map.insert(key, answer);
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many lookups were answered from what was kept.
    pub fn kept_served(&self) -> u64 {
        self.kept_served.load(Ordering::Relaxed)
    }

    /// How many times a connection asked whether anyone had committed.
    pub fn version_checks(&self) -> u64 {
        self.version_checks.load(Ordering::Relaxed)
    }

    /// The database file these connections open.
    pub fn file(&self) -> &Path {
        &self.path
    }

    /// A refresh token by its hash, its session and whether the session's user is active: the
    /// same answer as [`sessions::find_refresh`], or `None` to ask it instead.
    pub fn refresh_token(&self, token_hash: &str) -> Option<Option<(RefreshToken, Session, bool)>> {
        self.read(|reader| {
            reader
                .conn
                .prepare_cached(REFRESH_BY_HASH)?
                .query_row([token_hash], |row| {
                    // Columns by position, in the order `REFRESH_BY_HASH` lists them.
                    let token = RefreshToken {
                        id: row.get(0)?,
                        session_id: row.get(1)?,
                        token_hash: row.get(2)?,
                        created_at: timestamp(row, 3)?,
                        expires_at: timestamp(row, 4)?,
                        used_at: optional_timestamp(row, 5)?,
                    };
                    let session = Session {
                        id: row.get(6)?,
                        user_id: row.get(7)?,
                        created_at: timestamp(row, 8)?,
                        last_used_at: timestamp(row, 9)?,
                        expires_at: timestamp(row, 10)?,
                        revoked_at: optional_timestamp(row, 11)?,
                        user_agent: row.get(12)?,
                        client_addr: row.get(13)?,
                    };
                    Ok((token, session, row.get(14)?))
                })
                .optional()
        })
    }

    /// What a login reads before it hashes: the throttle counters of `keys` (at most two) and
    /// the user `login` names, as [`super::throttle::find_with_user`] reads them through sea-orm, or
    /// `None` to ask it instead. Never kept: a login must see the latest password and counts.
    pub fn login_lookup(&self, keys: &[String], login: &str) -> Option<(Vec<Counter>, Option<User>)> {
        if keys.len() > 2 {
            return None;
        }
        let (column, key) = users::login_key(login);
        self.read(|reader| {
            let counters = if keys.is_empty() {
                Vec::new()
            } else {
                reader
                    .conn
                    .prepare_cached(COUNTERS_BY_KEY)?
                    .query_map(params![keys.first(), keys.get(1)], counter)?
                    .collect::<rusqlite::Result<_>>()?
            };
            let found = reader
                .conn
                .prepare_cached(users::by_login_sql_sqlite(column))?
                .query_row([key], user)
                .optional()?;
            Ok((counters, found))
        })
    }

    /// [`sessions::rotate_refresh`] on SQLite: spends the token, stores its successor and
    /// slides the session, in one transaction; `false` (and nothing written) when the token
    /// was spent already.
    pub async fn rotate_refresh(self: Arc<Self>, rotation: Rotation) -> Result<bool, DbErr> {
        self.write("refresh rotation", move |txn| {
            let now = sqlx_timestamp(rotation.now);
            let expires_at = sqlx_timestamp(rotation.expires_at);
            let spent = txn
                .prepare_cached("UPDATE refresh_tokens SET used_at = ?1 WHERE id = ?2 AND used_at IS NULL")?
                .execute(params![now, rotation.spent])?
                == 1;
            if spent {
                txn.prepare_cached(INSERT_REFRESH)?.execute(params![
                    rotation.session_id,
                    rotation.token_hash,
                    now,
                    expires_at
                ])?;
                txn.prepare_cached("UPDATE sessions SET last_used_at = ?1, expires_at = ?2 WHERE id = ?3")?
                    .execute(params![now, expires_at, rotation.session_id])?;
                txn.commit()?;
            }
            // Not spent: the transaction wrote nothing and rolls back as it drops.
            Ok(spent)
        })
        .await
    }

    /// [`sessions::open_for_login`] on SQLite: the session, its first refresh token and the
    /// user's `last_login_at`, in one transaction; `false` (and nothing written) when the user
    /// is gone.
    pub async fn open_session(self: Arc<Self>, opening: Opening) -> Result<bool, DbErr> {
        self.write("login session", move |txn| {
            let now = sqlx_timestamp(opening.now);
            let expires_at = sqlx_timestamp(opening.expires_at);
            let session = txn
                .prepare_cached(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, \
                                           user_agent, client_addr) \
                     VALUES (?1, ?2, ?3, ?3, ?4, NULL, ?5, ?6)",
                )?
                .execute(params![
                    opening.session_id,
                    opening.user_id,
                    now,
                    expires_at,
                    opening.user_agent,
                    opening.client_addr
                ]);
            match session {
                Ok(_) => {}
                // The user is gone; the transaction rolls back as it drops.
                Err(rusqlite::Error::SqliteFailure(err, _))
                    if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    return Ok(false);
                }
                Err(err) => return Err(err),
            }
            txn.prepare_cached(INSERT_REFRESH)?.execute(params![
                opening.session_id,
                opening.refresh_hash,
                now,
                expires_at
            ])?;
            txn.prepare_cached("UPDATE users SET last_login_at = ?1 WHERE id = ?2")?
                .execute(params![now, opening.user_id])?;
            txn.commit()?;
            Ok(true)
        })
        .await
    }

    /// [`users::insert_with_default_roles`] on SQLite: the user and its default roles, in one
    /// transaction; `Err(Taken)` inside (and nothing written) when the email or username is
    /// taken. Columns are written as sea-orm's insert writes them.
    pub async fn insert_user(
        self: Arc<Self>,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<Result<User, Taken>, DbErr> {
        static INSERT: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO users (email, email_lower, username, username_lower, full_name, password_hash, \
                                    is_active, is_admin, created_at, updated_at, last_login_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, NULL) RETURNING {}",
                users::column_list()
            )
        });
        self.write("registration", move |txn| {
            let (email_lower, username_lower) = new.lowered();
            let inserted = txn.prepare_cached(&INSERT)?.query_row(
                params![
                    new.email,
                    email_lower,
                    new.username,
                    username_lower,
                    new.full_name,
                    new.password_hash,
                    new.is_active,
                    new.is_admin,
                    sqlx_timestamp(now)
                ],
                user,
            );
            let user = match inserted {
                Ok(user) => user,
                // Taken; the transaction rolls back as it drops.
                Err(rusqlite::Error::SqliteFailure(err, Some(message)))
                    if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        && let Some(taken) = Taken::named_in(&message) =>
                {
                    return Ok(Err(taken));
                }
                Err(err) => return Err(err),
            };
            txn.prepare_cached(
                "INSERT INTO user_roles (user_id, role_id) SELECT ?1, id FROM roles WHERE is_default",
            )?
            .execute([user.id])?;
            txn.commit()?;
            Ok(Ok(user))
        })
        .await
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction on the writer connection, on a blocking
    /// thread, in this process's write turn (so it never waits on SQLite's lock for a writer
    /// of its own). `work` commits; what it leaves uncommitted rolls back. A request that has
    /// gone (its deadline passed) by the time the transaction begins, after a wait for another
    /// process's lock, writes nothing, as a sea-orm transaction whose future was dropped.
    async fn write<T: Send + 'static>(
        self: Arc<Self>,
        what: &'static str,
        work: impl FnOnce(Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DbErr> {
        let turn = super::take_turn(Arc::clone(&self.turn)).await?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let done = self.write_blocking(|| reply.is_closed(), work);
            // The turn is held until the write has really ended, even if the request that
            // asked for it has gone.
            drop(turn);
            if let Some(done) = done.transpose() {
                let _ = reply.send(done);
            }
        });
        answer
            .await
            .map_err(|_| internal(format!("{what} task ended without an answer")))?
            .map_err(|err| internal(err.to_string()))
    }

    /// `Ok(None)`: the transaction began after `gone` and wrote nothing.
    fn write_blocking<T>(
        &self,
        gone: impl Fn() -> bool,
        work: impl FnOnce(Transaction<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        let taken = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut conn = match taken {
            Some(conn) => conn,
            None => self.open(Access::Write)?,
        };
        let done = {
            let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Nobody waits for the answer: the transaction rolls back as it drops.
            if gone() { None } else { Some(work(txn)?) }
        };
        // Only a connection whose work ended cleanly goes back; after an error it is dropped.
        *self.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        Ok(done)
    }

    fn read<T>(&self, lookup: impl FnOnce(&mut Reader) -> rusqlite::Result<T>) -> Option<T> {
        let pooled = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut reader = match pooled {
            Some(reader) => reader,
            None => match self.open(Access::Read) {
                Ok(conn) => Reader { conn, seen: None },
                Err(err) => {
                    tracing::debug!(error = %err, "opening a SQLite read connection failed");
                    return None;
                }
            },
        };
        let result = lookup(&mut reader);
        match result {
            Ok(answer) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < IDLE_CONNECTIONS {
                    idle.push(reader);
                }
                Some(answer)
            }
            Err(err) => {
                // The connection is dropped: whatever went wrong stays with it.
                tracing::debug!(error = %err, "direct SQLite read failed; asking sqlx");
                None
            }
        }
    }

    fn open(&self, access: Access) -> rusqlite::Result<Connection> {
        // Not SQLITE_OPEN_READ_ONLY for readers: a read-only connection cannot create the WAL
        // index (-shm) should it be missing; `query_only` refuses writes all the same.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        match access {
            Access::Read => {
                conn.busy_timeout(Duration::ZERO)?;
                conn.pragma_update(None, "query_only", true)?;
            }
            Access::Write => {
                // As sqlx's connections are set up in `store::connect`.
                conn.busy_timeout(super::SQLITE_BUSY_TIMEOUT)?;
                conn.pragma_update(None, "foreign_keys", true)?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
            }
        }
        Ok(conn)
    }
}

/// A read connection, and the data version it saw when it last asked (`None`: never).
struct Reader {
    conn: Connection,
    seen: Option<i64>,
}

/// Answers kept while nobody commits, and how many times everything kept was forgotten.
#[derive(Default)]
struct Kept {
    generation: i64,
    grants: HashMap<String, SessionGrant>,
    users: HashMap<i64, Arc<User>>,
}

#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// A new refresh token (session, hash, created, expires), as both direct writes store one.
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at, used_at) \
                              VALUES (?1, ?2, ?3, ?4, NULL)";

/// What [`SqliteDirect::rotate_refresh`] writes.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The spent token's id.
    pub spent: i64,
    pub session_id: String,
    /// The successor's hash.
    pub token_hash: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What [`SqliteDirect::open_session`] writes for a login.
#[derive(Debug, Clone)]
pub struct Opening {
    pub session_id: String,
    pub user_id: i64,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub client_addr: Option<String>,
    /// The first refresh token's hash.
    pub refresh_hash: String,
}

/// A timestamp as sqlx writes one to SQLite (RFC 3339, `+00:00`), so that rows written here and
/// there compare and sort alike as text.
fn sqlx_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A failure of a direct write as sea-orm reports a failed query; SQLite's "database is locked"
/// stays in the text, so running out of the busy timeout is still an outage (503).
fn internal(text: String) -> DbErr {
    DbErr::Query(RuntimeErr::Internal(text))
}

const REFRESH_BY_HASH: &str = "SELECT t.id, t.session_id, t.token_hash, t.created_at, \
    t.expires_at, t.used_at, s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, \
    s.revoked_at, s.user_agent, s.client_addr, u.is_active \
    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
    WHERE t.token_hash = ?";

/// Login throttle counters by key; the second key may be NULL, which matches nothing.
const COUNTERS_BY_KEY: &str = "SELECT key, failures, window_started_at, last_failure_at, locked_until, \
    lock_level FROM login_throttle WHERE key IN (?1, ?2)";

/// A throttle counter from a row of `COUNTERS_BY_KEY`.
fn counter(row: &Row<'_>) -> rusqlite::Result<Counter> {
    Ok(Counter {
        key: row.get(0)?,
        failures: row.get(1)?,
        window_started_at: timestamp(row, 2)?,
        last_failure_at: timestamp(row, 3)?,
        locked_until: optional_timestamp(row, 4)?,
        lock_level: row.get(5)?,
    })
}

/// How many columns a user has: the user's columns come first in the statements here, in the
/// entity's order, and what follows them starts at this position.
fn user_columns() -> usize {
    UserColumn::iter().count()
}

/// A user from the first columns of a row. Columns are read by position (a column's place in
/// the entity's order is its discriminant), not by name: finding a name compares it with every
/// column name before it, which for a user's 19 columns cost more than the lookup itself. A
/// struct literal, so a new column that is not read here does not compile.
fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    use UserColumn as C;
    Ok(User {
        id: row.get(C::Id as usize)?,
        email: row.get(C::Email as usize)?,
        email_lower: row.get(C::EmailLower as usize)?,
        username: row.get(C::Username as usize)?,
        username_lower: row.get(C::UsernameLower as usize)?,
        full_name: row.get(C::FullName as usize)?,
        password_hash: row.get(C::PasswordHash as usize)?,
        is_active: row.get(C::IsActive as usize)?,
        is_admin: row.get(C::IsAdmin as usize)?,
        created_at: timestamp(row, C::CreatedAt as usize)?,
        updated_at: timestamp(row, C::UpdatedAt as usize)?,
        last_login_at: optional_timestamp(row, C::LastLoginAt as usize)?,
        bio: row.get(C::Bio as usize)?,
        avatar_url: row.get(C::AvatarUrl as usize)?,
        location: row.get(C::Location as usize)?,
        website: row.get(C::Website as usize)?,
        phone_number: row.get(C::PhoneNumber as usize)?,
        birth_date: row.get(C::BirthDate as usize)?,
        preferences: row.get(C::Preferences as usize)?,
    })
}

/// A timestamp as sqlx writes them (RFC 3339) with chrono's RFC 3339 parser, which is much
/// quicker than the format-string parsing rusqlite does; anything else goes to rusqlite.
fn timestamp(row: &Row<'_>, at: usize) -> rusqlite::Result<DateTime<Utc>> {
    if let Ok(text) = row.get_ref(at)?.as_str()
        && let Ok(parsed) = DateTime::parse_from_rfc3339(text)
    {
        return Ok(parsed.with_timezone(&Utc));
    }
    row.get(at)
}

fn optional_timestamp(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get_ref(at)? {
        ValueRef::Null => Ok(None),
        _ => timestamp(row, at).map(Some),
    }
}

fn list(row: &Row<'_>, at: usize) -> rusqlite::Result<Vec<String>> {
    let json: Option<String> = row.get(at)?;
    sessions::parse_name_list(json.as_deref())
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, err.into()))
}
