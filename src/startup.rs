//! Wiring: settings → database → services → router → listener. Tests build the application
//! through exactly this code.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::TimeDelta;
use sea_orm::{DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

use crate::auth::{PasswordHasher, TokenService};
use crate::clock::Clock;
use crate::config::{MIN_SECRET_BYTES, Settings};
use crate::domain::throttle::{self, ThrottlePolicy};
use crate::domain::{Email, Password, PasswordPolicy, SecretString};
use crate::http::{self, AppState, Limits, Ops};
use crate::services::{Core, accounts};
use crate::shutdown::Shutdown;
use crate::store::pg_direct::PgDirect;
use crate::store::sqlite_direct::SqliteDirect;
use crate::store::{self, Direct, PoolSettings, migrations::Migrator};
use crate::telemetry;

/// A bound, ready-to-serve application.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    core: Core,
    shutdown: Shutdown,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Like [`build`](Self::build), with a clock the caller controls (tests move time).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        // Before anything is hashed, so the first measurements are kept.
        telemetry::metrics::install();
        let db = connect(&settings).await?;
        if settings.auto_migrate {
            Migrator::up(&db, None)
                .await
                .context("applying database migrations")?;
        }
        let mut core = core(&settings, db, clock)?;
        if core.db.get_database_backend() == DbBackend::Postgres {
            // One client served a 2-core machine best (1, 2 and 4 measured: docs/benchmarks.md):
            // the deeper its pipeline, the more queries the server reads per wake-up.
            let clients = settings
                .db_pipeline_connections
                .unwrap_or_else(|| cores().div_ceil(4));
            let timeout = Duration::from_millis(settings.db_acquire_timeout_ms);
            core.direct = PgDirect::connect(&settings.database_url, clients, timeout)
                .await
                .map(Direct::Postgres);
        }
        housekeeping(core.clone());
        bootstrap_admin(&core, &settings).await?;
        let shutdown = Shutdown::default();
        let state = AppState::new(
            core.clone(),
            Limits {
                request_timeout: Duration::from_secs(settings.request_timeout_secs),
                max_body_bytes: settings.max_body_bytes,
                trusted_proxies: settings.trusted_proxy_addrs()?,
                cors_origins: settings.cors_origin_list(),
                auth_rate_per_second: settings.auth_rate_per_second,
                auth_rate_burst: settings.auth_rate_burst,
            },
            Ops {
                metrics_token: settings.metrics_token.clone(),
                shutdown: shutdown.clone(),
            },
        );
        let router = http::app(state);
        let listener = TcpListener::bind((settings.host, settings.port))
            .await
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        Ok(Self {
            listener,
            router,
            core,
            shutdown,
            shutdown_delay: Duration::from_secs(settings.shutdown_delay_secs),
            shutdown_timeout: Duration::from_secs(settings.shutdown_timeout_secs),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The switch that starts a graceful shutdown, like a stop signal does.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes (or [`shutdown`](Self::shutdown) is begun), then shuts down:
    ///
    /// 1. `/readyz` answers 503 at once; for `SHUTDOWN_DELAY_SECS` requests are still served, so
    ///    load balancers that poll readiness stop sending traffic before connections are refused;
    /// 2. the listener closes and in-flight requests finish (idle keep-alive connections close);
    /// 3. `SHUTDOWN_TIMEOUT_SECS` after the signal, whatever is still running is abandoned;
    /// 4. the database pool closes.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        use tower::Layer as _;
        let app = tower::util::MapRequestLayer::new(http::trim_trailing_slash).layer(self.router);
        let service = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(app);
        let (shutdown, delay, timeout) = (self.shutdown.clone(), self.shutdown_delay, self.shutdown_timeout);
        let drain = async move {
            tokio::select! {
                () = stop => {},
                () = shutdown.begun() => {},
            }
            shutdown.begin();
            if !delay.is_zero() {
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "shutting down: /readyz answers 503; still serving until the delay ends"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("stopped accepting connections; finishing in-flight requests");
        };
        let server = axum::serve(self.listener, service)
            .with_graceful_shutdown(drain)
            .into_future();
        let deadline = async {
            self.shutdown.begun().await;
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            served = server => served.context("serving HTTP")?,
            () = deadline => tracing::warn!(
                timeout_secs = timeout.as_secs(),
                "requests still running after SHUTDOWN_TIMEOUT_SECS; exiting without them"
            ),
        }
        // Closing waits for connections to come back, which abandoned requests may never do.
        if tokio::time::timeout(POOL_CLOSE_TIMEOUT, self.core.db.clone().close())
            .await
            .is_err()
        {
            tracing::warn!("the database pool did not close in time");
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// How long closing the pool may take at shutdown, on top of `SHUTDOWN_TIMEOUT_SECS`.
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every ten minutes, from start-up on: deletes stale login-throttle counters and, on
/// PostgreSQL, folds the auth epoch rows of ended server processes.
fn housekeeping(core: Core) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match crate::services::throttle::prune(&core).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "pruned login throttle counters"),
                Err(err) => tracing::warn!(error = %err, "could not prune login throttle counters"),
            }
            // The triggers count writes whether or not this replica's pipelined reads are on.
            if core.db.get_database_backend() == DbBackend::Postgres {
                match store::pg_direct::fold_auth_epoch(&core.db).await {
                    Ok(false) => {}
                    Ok(true) => tracing::debug!("folded the auth epoch rows of ended server processes"),
                    Err(err) => tracing::warn!(error = %err, "could not fold the auth epoch rows"),
                }
            }
        }
    });
}

/// Connects to the configured database.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    store::connect(
        &settings.database_url,
        &PoolSettings {
            max_connections: settings.db_max_connections,
            acquire_timeout: Duration::from_millis(settings.db_acquire_timeout_ms),
        },
    )
    .await
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Builds the services' shared context from settings. Of the direct lookups it opens only
/// SQLite's, which cost nothing until used; [`Application::build`] adds PostgreSQL's.
pub fn core(settings: &Settings, db: DatabaseConnection, clock: Clock) -> anyhow::Result<Core> {
    let secret = jwt_secret(settings)?;
    Ok(Core {
        direct: SqliteDirect::for_database(&db).map(Direct::Sqlite),
        db,
        hasher: PasswordHasher::new(settings.hash_concurrency.unwrap_or_else(cores))?,
        tokens: TokenService::new(&secret, seconds(settings.access_token_ttl)),
        clock,
        password_policy: PasswordPolicy {
            min_length: settings.password_min_length,
            deny_common: settings.password_deny_common,
        },
        session_ttl: seconds(settings.refresh_token_ttl),
        refresh_grace: seconds(settings.refresh_grace_secs),
        throttle: ThrottlePolicy {
            enabled: settings.throttle_enabled,
            account: throttle::Limits {
                slow_after: settings.throttle_account_slow_after,
                lock_after: settings.throttle_account_lock_after,
            },
            address: throttle::Limits {
                slow_after: settings.throttle_address_slow_after,
                lock_after: settings.throttle_address_lock_after,
            },
            lock: seconds(settings.throttle_lock_secs),
            max_lock: seconds(settings.throttle_max_lock_secs),
            window: seconds(settings.throttle_window_secs),
        },
    })
}

fn seconds(secs: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// The configured key, or in development one generated once and kept in the data folder so
/// tokens survive restarts.
fn jwt_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    if let Some(key) = &settings.jwt_secret_key {
        if key.expose().len() < MIN_SECRET_BYTES {
            tracing::warn!("JWT_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes; use a longer key");
        }
        return Ok(key.clone());
    }
    let path = settings.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= MIN_SECRET_BYTES
    {
        tracing::warn!(path = %path.display(), "JWT_SECRET_KEY is not set; using the development key");
        return Ok(SecretString::new(existing.trim()));
    }
    let key: String = {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    write_private(&path, &key)?;
    tracing::warn!(path = %path.display(), "JWT_SECRET_KEY is not set; generated a development key");
    Ok(SecretString::new(key))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())?;
    Ok(())
}

/// Creates the first administrator from `ADMIN_EMAIL`/`ADMIN_PASSWORD` when no admin exists.
async fn bootstrap_admin(core: &Core, settings: &Settings) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) else {
        return Ok(());
    };
    if store::users::any_admin(&core.db).await? {
        return Ok(());
    }
    let account = admin_account(core, email, None, password)?;
    let user = accounts::create_user(core, account, true, true)
        .await
        .context("creating the ADMIN_EMAIL administrator")?;
    tracing::info!(user_id = user.id, "created the bootstrap administrator");
    Ok(())
}

/// Parses administrator credentials given on the command line or in settings.
pub fn admin_account(
    core: &Core,
    email: &str,
    username: Option<&str>,
    password: &SecretString,
) -> anyhow::Result<accounts::NewAccount> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("admin email: {}", e.msg))?;
    let username = username
        .map(crate::domain::Username::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("admin username: {}", e.msg))?;
    let identities = [email.as_str(), username.as_ref().map_or("", |u| u.as_str())];
    let password = Password::parse(password, &core.password_policy, &identities)
        .map_err(|e| anyhow::anyhow!("admin password: {}", e.msg))?;
    Ok(accounts::NewAccount {
        email,
        username,
        full_name: None,
        password,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
