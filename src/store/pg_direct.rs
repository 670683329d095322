//! PostgreSQL lookups pipelined over a few connections, for what nearly every request asks (the
//! auth lookup and a user by id) and for what a login reads before it hashes.
//!
//! Through sqlx each of these is a checkout from the pool and a round trip on a connection of
//! its own: the server process wakes for one query, answers, and sleeps again, and on a small
//! machine those wake-ups cost more than the lookup. Here a few `tokio-postgres` clients are
//! shared by every request, and a client sends a query as soon as it is asked, without waiting
//! for the answers to the ones before it. Under load the server reads many queries per wake-up
//! and the service reads many answers per read.
//!
//! Only reads run here, each a statement of its own outside any transaction, so each sees every
//! commit made before it, as a sqlx query would. Writes stay on sqlx: a commit waits for its
//! WAL flush, and every query pipelined behind it would wait too.
//!
//! A lookup answers exactly what the sea-orm query would, or `None` to ask sqlx instead. Any
//! failure (the server went away, a migration changed a prepared statement's result) drops
//! that client; it is opened again in the background, at most once a second, while sqlx
//! serves.
//!
//! A login's lookup (decision 109) is never kept: it must see the latest password and throttle
//! counts. It runs here because through sqlx's pool and sea-orm the same statement cost the
//! request threads about 80,000 more instructions a login (of some 325,000), time that a login
//! flood takes from the password hashes.
//!
//! What the other lookups read is kept (decision 80): the auth answer per session and the user per
//! id, beside the database's auth epoch (migration `m20261130_000002_auth_epoch`), a sum that
//! moves in the same commit as any change to what they read. A lookup that finds its key kept
//! asks only for the epoch, a one-row-per-process sum much cheaper for the server than the
//! lookup; when the epoch is where it was when the answer was read, nothing the answer depends
//! on has changed since, so it is still exact, not merely recent. Otherwise, or when nothing is
//! kept, the whole lookup runs and reads the epoch in the same statement (so in the same
//! snapshot). Answers of "none" are never kept. Concurrent checks share one epoch query: while
//! one is on its way, every check that starts waits for the next, which is sent when it returns,
//! so each check is answered by a query sent after it started. The auth lookup hands back the
//! epoch it saw ([`Confirmed`]); a user lookup later in the same request serves an answer kept
//! at that epoch without asking again, since that epoch was read after the request began
//! (decision 82).
//!
//! These connections never carry TLS: where the server would encrypt a sqlx connection
//! (`sslmode=require`, or `prefer`, the default, with a server that offers TLS), the reader is
//! off and every query goes through sqlx. Connection parameters only sqlx knows also leave it
//! off. Either way the service logs why at start-up.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::{Ready, ready};
use std::hash::Hash;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{Counter, counter};
use tokio::sync::watch;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTlsStream, TlsConnect};
use tokio_postgres::{Client, Config, Row, Socket, Statement};

use super::Confirmed;
use super::entities::login_throttle::Model as ThrottleCounter;
use super::entities::user::{Column as UserColumn, Model as User};
use super::sessions::{self, Grant, SessionGrant};
use super::throttle::login_sql_postgres;
use super::users::{by_id_sql, login_key};
use crate::telemetry::metrics::{PIPELINED_ANSWERS, PIPELINED_LOOKUP_KINDS, PIPELINED_LOOKUPS};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

/// The clients' `application_name`, unless the URL names one.
const APPLICATION_NAME: &str = "users-api pipelined reads";

/// How long a dropped client waits before it is opened again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// At most this many answers are kept of each kind; a full map is emptied and fills again.
/// A kept auth answer is about a kilobyte.
const KEEP: usize = 4096;

/// The auth epoch: the sum over `auth_epoch`'s rows.
const EPOCH_SQL: &str = "SELECT COALESCE(sum(n), 0)::bigint FROM auth_epoch";

/// Clients shared by every request, each with its prepared statements.
pub struct PgDirect {
    config: Config,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
    kept: Mutex<Kept>,
    checks: Mutex<Checks>,
    /// The last epoch query's number and answer (`None`: it failed).
    checked: watch::Sender<(u64, Option<i64>)>,
    session_tally: Tally,
    user_tally: Tally,
    /// Login lookups answered here (all read: they are never kept).
    login_tally: Tally,
}

/// `pipelined_lookups_total` of one lookup: answers served from what was kept, and read.
struct Tally {
    kept: Counter,
    read: Counter,
}

impl Tally {
    fn new(lookup: &'static str) -> Self {
        let [kept, read] = PIPELINED_ANSWERS
            .map(|answer| counter!(PIPELINED_LOOKUPS, "lookup" => lookup, "answer" => answer));
        Self { kept, read }
    }
}

/// The epoch queries: how many were sent, the highest number a check waits for, and whether
/// the task that sends them is running.
#[derive(Default)]
struct Checks {
    sent: u64,
    wanted: u64,
    running: bool,
}

/// Answers read while the auth epoch was `epoch`, all still exact while it stays there.
#[derive(Default)]
struct Kept {
    epoch: i64,
    grants: HashMap<String, SessionGrant>,
    users: HashMap<i64, Arc<User>>,
}

impl Kept {
    /// Forgets everything kept when `epoch`, read with an answer about to be kept, is past
    /// what is kept. (An earlier one belongs to a statement that was overtaken.)
    fn observe(&mut self, epoch: i64) {
        if epoch > self.epoch {
            self.forget(epoch);
        }
    }

    /// Forgets everything kept when `epoch`, from an epoch query, differs from what is kept.
    /// Those queries run one after another, so each answer is the newest: one lower than what is
    /// kept means the database went back (a restored backup), and nothing kept can be trusted.
    fn check(&mut self, epoch: i64) {
        if epoch != self.epoch {
            self.forget(epoch);
        }
    }

    fn forget(&mut self, epoch: i64) {
        self.epoch = epoch;
        self.grants.clear();
        self.users.clear();
    }
}

impl std::fmt::Debug for PgDirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDirect")
            .field("clients", &self.slots.len())
            .finish_non_exhaustive()
    }
}

enum Slot {
    Ready(Arc<Prepared>),
    Opening,
    /// Dropped at this instant; opened again on a use after [`RETRY_AFTER`].
    Down(Instant),
}

/// A client and its statements, prepared when it connected. The lookups return the auth epoch
/// as their last column.
struct Prepared {
    client: Client,
    epoch: Statement,
    session_grant: Statement,
    user: Statement,
    login_by_email: Statement,
    login_by_username: Statement,
}

impl PgDirect {
    /// `clients` pipelined clients for the PostgreSQL database at `url`, or `None` (logged) when
    /// they cannot be used there: no clients asked for, a URL with parameters only sqlx knows,
    /// or a server that wants TLS.
    pub async fn connect(url: &str, clients: usize, connect_timeout: Duration) -> Option<Arc<Self>> {
        if clients == 0 {
            return None;
        }
        let mut config = match Config::from_str(url) {
            Ok(config) => config,
            Err(err) => {
                tracing::info!(error = %err, "pipelined PostgreSQL reads are off: the URL has a parameter they do not know");
                return None;
            }
        };
        if config.get_ssl_mode() == SslMode::Require {
            tracing::info!("pipelined PostgreSQL reads are off: sslmode=require, and they do not carry TLS");
            return None;
        }
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            // So that an operator can tell these connections from the pool's.
            config.application_name(APPLICATION_NAME);
        }
        let direct = Self {
            config,
            slots: (0..clients).map(|_| Mutex::new(Slot::Opening)).collect(),
            next: AtomicUsize::new(0),
            kept: Mutex::default(),
            checks: Mutex::default(),
            checked: watch::Sender::new((0, None)),
            session_tally: Tally::new(PIPELINED_LOOKUP_KINDS[0]),
            user_tally: Tally::new(PIPELINED_LOOKUP_KINDS[1]),
            login_tally: Tally::new(PIPELINED_LOOKUP_KINDS[2]),
        };
        // The first client tells whether the server wants TLS; the others open in the
        // background as the rest do after a failure.
        match direct.open().await {
            Ok(first) => *direct.slot(0) = Slot::Ready(Arc::new(first)),
            Err(err) if refused_tls(&err) => {
                tracing::info!(
                    "pipelined PostgreSQL reads are off: the server offers TLS, which they do not carry"
                );
                return None;
            }
            Err(err) => {
                tracing::warn!(error = %err, "opening a pipelined PostgreSQL client failed; retrying in the background");
                *direct.slot(0) = Slot::Down(Instant::now());
            }
        }
        tracing::info!(clients, "pipelined PostgreSQL reads are on");
        let direct = Arc::new(direct);
        for at in 1..clients {
            Arc::clone(&direct).reopen(at);
        }
        Some(direct)
    }

    /// [`sessions::find_with_user_and_grants`]'s answer, or `None` to ask it instead. A kept
    /// answer whose session has expired by `now` is read again: sliding a session's expiry
    /// forward does not move the epoch (every refresh does it), so the session may live on.
    pub async fn session_grant(
        self: &Arc<Self>,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Option<Option<SessionGrant>> {
        let kept = self
            .kept_answer(
                session_id,
                |k| &mut k.grants,
                |grant| grant.expires_at > now,
                None,
            )
            .await;
        if let Some((grant, epoch)) = kept {
            self.session_tally.kept.increment(1);
            return Some(Some(SessionGrant {
                confirmed: Some(Confirmed(epoch)),
                ..grant
            }));
        }
        let Some((grant, epoch)) = self
            .lookup(
                |p| &p.session_grant,
                &[&session_id],
                |row| {
                    let after = UserColumn::Preferences as usize + 1;
                    let grant = SessionGrant {
                        grant: Arc::new(Grant {
                            user: user(row)?,
                            roles: list(row, after + 2)?,
                            permissions: list(row, after + 3)?,
                        }),
                        expires_at: row.try_get(after)?,
                        revoked_at: row.try_get(after + 1)?,
                        confirmed: None,
                    };
                    Ok((grant, row.try_get(after + 4)?))
                },
            )
            .await?
        else {
            return Some(None);
        };
        self.session_tally.read.increment(1);
        self.keep(epoch, session_id.to_owned(), grant.clone(), |k| &mut k.grants);
        Some(Some(SessionGrant {
            confirmed: Some(Confirmed(epoch)),
            ..grant
        }))
    }

    /// [`super::users::find`]'s answer outside a transaction, or `None` to ask it instead.
    /// `confirmed`: the epoch this request's auth lookup saw, if it ran here.
    pub async fn user(self: &Arc<Self>, id: i64, confirmed: Option<Confirmed>) -> Option<Option<Arc<User>>> {
        if let Some((user, _)) = self.kept_answer(&id, |k| &mut k.users, |_| true, confirmed).await {
            self.user_tally.kept.increment(1);
            return Some(Some(user));
        }
        let Some((user, epoch)) = self
            .lookup(
                |p| &p.user,
                &[&id],
                |row| Ok((user(row)?, row.try_get(UserColumn::Preferences as usize + 1)?)),
            )
            .await?
        else {
            return Some(None);
        };
        self.user_tally.read.increment(1);
        let user = Arc::new(user);
        self.keep(epoch, id, Arc::clone(&user), |k| &mut k.users);
        Some(Some(user))
    }

    /// [`super::throttle::find_with_user`]'s answer, or `None` to ask it instead: the throttle
    /// counters of `keys` (at most two) and the user `login` names. Never kept: a login must see
    /// the latest password and counts.
    pub async fn login_lookup(
        self: &Arc<Self>,
        keys: &[String],
        login: &str,
    ) -> Option<(Vec<ThrottleCounter>, Option<User>)> {
        if keys.len() > 2 {
            return None;
        }
        let (column, key) = login_key(login);
        let found = self
            .lookup(
                |p| match column {
                    UserColumn::EmailLower => &p.login_by_email,
                    _ => &p.login_by_username,
                },
                &[&keys.first(), &keys.get(1), &key],
                |row| {
                    let counters: String = row.try_get(UserColumn::Preferences as usize + 1)?;
                    let counters = serde_json::from_str(&counters)?;
                    let found = match row.try_get::<_, Option<i64>>(UserColumn::Id as usize)? {
                        Some(_) => Some(user(row)?),
                        None => None,
                    };
                    Ok((counters, found))
                },
            )
            .await
            // The statement answers one row whoever asks; none means something is amiss, and
            // the pool's statement says what.
            .flatten()?;
        self.login_tally.read.increment(1);
        Some(found)
    }

    /// The answer kept for `key` and the epoch it is exact at, if there is one, it passes
    /// `usable`, and the auth epoch shows it is still exact: the `confirmed` epoch of this
    /// request when the answer was kept at it, else a new epoch query. Kept answers are cheap
    /// to clone: what they hold is shared.
    async fn kept_answer<K: Eq + Hash + Borrow<Q>, Q: Eq + Hash + ?Sized, T: Clone>(
        self: &Arc<Self>,
        key: &Q,
        map: fn(&mut Kept) -> &mut HashMap<K, T>,
        usable: impl FnOnce(&T) -> bool,
        confirmed: Option<Confirmed>,
    ) -> Option<(T, i64)> {
        let (answer, read_at) = {
            let mut kept = self.kept();
            let read_at = kept.epoch;
            (map(&mut kept).get(key)?.clone(), read_at)
        };
        if !usable(&answer) {
            return None;
        }
        if confirmed == Some(Confirmed(read_at)) {
            return Some((answer, read_at));
        }
        let now = self.epoch().await?;
        self.kept().check(now);
        (now == read_at).then_some((answer, read_at))
    }

    /// Keeps `answer`, read when the auth epoch was `epoch`, unless the epoch has moved since.
    fn keep<K: Eq + Hash, T>(&self, epoch: i64, key: K, answer: T, map: fn(&mut Kept) -> &mut HashMap<K, T>) {
        let mut kept = self.kept();
        kept.observe(epoch);
        if kept.epoch != epoch {
            return;
        }
        let map = map(&mut kept);
        if map.len() >= KEEP {
            map.clear();
        }
        map.insert(key, answer);
    }

    /// The auth epoch, from an epoch query sent after this call, shared with the calls around
    /// it; `None` when the query failed.
    async fn epoch(self: &Arc<Self>) -> Option<i64> {
        let want = {
            let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
            // The query in flight, if any, was sent before this call: wait for the next.
            let want = checks.sent + 1;
            checks.wanted = want;
            if !checks.running {
                checks.running = true;
                // A task of its own, so that a request that goes away leaves none waiting.
                tokio::spawn(Arc::clone(self).send_epoch_queries());
            }
            want
        };
        let mut checked = self.checked.subscribe();
        let answer = checked.wait_for(|(number, _)| *number >= want).await.ok()?;
        answer.1
    }

    /// Sends epoch queries one after another while calls wait for one.
    async fn send_epoch_queries(self: Arc<Self>) {
        loop {
            let number = {
                let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
                if checks.wanted <= checks.sent {
                    checks.running = false;
                    return;
                }
                checks.sent += 1;
                checks.sent
            };
            let epoch = self
                .lookup(|p| &p.epoch, &[], |row| Ok(row.try_get(0)?))
                .await
                .flatten();
            self.checked.send_replace((number, epoch));
        }
    }

    /// How many epoch queries this reader has sent.
    pub fn epoch_queries(&self) -> u64 {
        self.checks.lock().unwrap_or_else(PoisonError::into_inner).sent
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `statement` on the next client and reads its row, if any, with `read`.
    async fn lookup<T>(
        self: &Arc<Self>,
        statement: impl FnOnce(&Prepared) -> &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        read: impl FnOnce(&Row) -> ReadResult<T>,
    ) -> Option<Option<T>> {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let prepared = self.ready(at)?;
        let answer = match prepared.client.query_opt(statement(&prepared), params).await {
            Ok(None) => return Some(None),
            Ok(Some(row)) => read(&row),
            Err(err) => Err(err.into()),
        };
        match answer {
            Ok(found) => Some(Some(found)),
            Err(err) => {
                // Every lookup in flight on a client that failed fails with it; one says so.
                if self.drop_client(at, &prepared) {
                    tracing::warn!(error = %err, "a pipelined PostgreSQL lookup failed; the pool answers until its client is reopened");
                }
                None
            }
        }
    }

    /// The client at `at` when it is open; otherwise `None`, after starting to open it again if
    /// it has been down long enough.
    fn ready(self: &Arc<Self>, at: usize) -> Option<Arc<Prepared>> {
        let mut slot = self.slot(at);
        match &*slot {
            Slot::Ready(prepared) => return Some(Arc::clone(prepared)),
            Slot::Down(since) if since.elapsed() >= RETRY_AFTER => *slot = Slot::Opening,
            _ => return None,
        }
        drop(slot);
        Arc::clone(self).reopen(at);
        None
    }

    /// Marks the client at `at` down, unless it was dropped or replaced already; `true` when
    /// this call dropped it.
    fn drop_client(&self, at: usize, failed: &Arc<Prepared>) -> bool {
        let mut slot = self.slot(at);
        let current = matches!(&*slot, Slot::Ready(current) if Arc::ptr_eq(current, failed));
        if current {
            *slot = Slot::Down(Instant::now());
        }
        current
    }

    /// Opens the client at `at` in the background; the caller has marked its slot `Opening`.
    fn reopen(self: Arc<Self>, at: usize) {
        tokio::spawn(async move {
            let next = match self.open().await {
                Ok(prepared) => Slot::Ready(Arc::new(prepared)),
                Err(err) => {
                    tracing::debug!(error = %err, "opening a pipelined PostgreSQL client failed");
                    Slot::Down(Instant::now())
                }
            };
            *self.slot(at) = next;
        });
    }

    async fn open(&self) -> Result<Prepared, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(RefuseTls).await?;
        // The connection does the socket's reads and writes; it ends when the client is
        // dropped or the server goes away.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a pipelined PostgreSQL connection ended");
            }
        });
        // One statement each, so the epoch and the answer come from one snapshot.
        let with_epoch = |sql: &str| format!("SELECT q.*, ({EPOCH_SQL}) FROM ({sql}) q");
        let epoch = client.prepare(EPOCH_SQL).await?;
        let session_grant = client
            .prepare(&with_epoch(sessions::auth_sql(DbBackend::Postgres)))
            .await?;
        let user = client
            .prepare(&with_epoch(by_id_sql(DbBackend::Postgres)))
            .await?;
        let login_by_email = client.prepare(login_sql_postgres(UserColumn::EmailLower)).await?;
        let login_by_username = client
            .prepare(login_sql_postgres(UserColumn::UsernameLower))
            .await?;
        Ok(Prepared {
            client,
            epoch,
            session_grant,
            user,
            login_by_email,
            login_by_username,
        })
    }

    fn slot(&self, at: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[at].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type ReadResult<T> = Result<T, Box<dyn StdError + Sync + Send>>;

/// Folds the `auth_epoch` rows of server processes that have ended into row 0, keeping the
/// sum (so what is kept stays kept); answers whether there were any. Run now and then through
/// the pool: each process that ever changed an auth table leaves a row, and every check sums
/// them all.
pub async fn fold_auth_epoch(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let folded = db
        .execute_unprepared(
            "WITH gone AS (DELETE FROM auth_epoch WHERE pid <> 0 AND pid NOT IN \
               (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) RETURNING n) \
             UPDATE auth_epoch SET n = n + (SELECT COALESCE(sum(n), 0) FROM gone) \
             WHERE pid = 0 AND EXISTS (SELECT 1 FROM gone)",
        )
        .await?;
    Ok(folded.rows_affected() > 0)
}

/// A user from the first columns of a row, by position in the entity's column order (see
/// `sqlite_direct::user`). A struct literal, so a new column not read here does not compile.
fn user(row: &Row) -> ReadResult<User> {
    use UserColumn as C;
    Ok(User {
        id: row.try_get(C::Id as usize)?,
        email: row.try_get(C::Email as usize)?,
        email_lower: row.try_get(C::EmailLower as usize)?,
        username: row.try_get(C::Username as usize)?,
        username_lower: row.try_get(C::UsernameLower as usize)?,
        full_name: row.try_get(C::FullName as usize)?,
        password_hash: row.try_get(C::PasswordHash as usize)?,
        is_active: row.try_get(C::IsActive as usize)?,
        is_admin: row.try_get(C::IsAdmin as usize)?,
        created_at: row.try_get(C::CreatedAt as usize)?,
        updated_at: row.try_get(C::UpdatedAt as usize)?,
        last_login_at: row.try_get(C::LastLoginAt as usize)?,
        bio: row.try_get(C::Bio as usize)?,
        avatar_url: row.try_get(C::AvatarUrl as usize)?,
        location: row.try_get(C::Location as usize)?,
        website: row.try_get(C::Website as usize)?,
        phone_number: row.try_get(C::PhoneNumber as usize)?,
        birth_date: row.try_get(C::BirthDate as usize)?,
        preferences: row.try_get(C::Preferences as usize)?,
    })
}

fn list(row: &Row, at: usize) -> ReadResult<Vec<String>> {
    let json: Option<String> = row.try_get(at)?;
    Ok(sessions::parse_name_list(json.as_deref())?)
}

/// Whether opening a client failed because the server would have encrypted the connection.
fn refused_tls(err: &tokio_postgres::Error) -> bool {
    let mut cause = err.source();
    while let Some(err) = cause {
        if err.is::<TlsRefused>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A TLS connector that asks the server whether it wants TLS (as sqlx's default `prefer`
/// does) and, when it does, refuses: a server that offers TLS gets it from sqlx, and these
/// plaintext clients stay off. `NoTls` would not ask and go plaintext silently.
#[derive(Debug, Clone, Copy)]
struct RefuseTls;

#[derive(Debug)]
struct TlsRefused;

impl std::fmt::Display for TlsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server offers TLS; pipelined reads do not carry it")
    }
}

impl StdError for TlsRefused {}

impl MakeTlsConnect<Socket> for RefuseTls {
    type Stream = NoTlsStream;
    type TlsConnect = RefuseTls;
    type Error = TlsRefused;

    fn make_tls_connect(&mut self, _domain: &str) -> Result<RefuseTls, TlsRefused> {
        Ok(RefuseTls)
    }
}

impl<S> TlsConnect<S> for RefuseTls {
    type Stream = NoTlsStream;
    type Error = TlsRefused;
    type Future = Ready<Result<NoTlsStream, TlsRefused>>;

    fn connect(self, _stream: S) -> Self::Future {
        ready(Err(TlsRefused))
    }
}
