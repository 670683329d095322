//! Typed settings: built-in defaults, then `users-api.toml` (if present), then `.env`, then
//! environment variables. Invalid settings stop start-up with a message that says how to fix them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::domain::SecretString;

/// The minimum length of `JWT_SECRET_KEY` in production (256 bits for HS256).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://path`, `postgres://…` or `mysql://…`.
    pub database_url: String,
    pub host: IpAddr,
    pub port: u16,
    pub app_env: AppEnv,
    /// HS256 signing key. Required (≥ 32 bytes) in production.
    pub jwt_secret_key: Option<SecretString>,
    /// Access token lifetime, seconds.
    pub access_token_ttl: u64,
    /// Session (refresh token) lifetime, seconds, counted from the last refresh.
    pub refresh_token_ttl: u64,
    /// How long a spent refresh token is still accepted (concurrent refreshes), seconds.
    pub refresh_grace_secs: u64,
    pub log_level: String,
    pub log_format: LogFormat,
    /// Where the development JWT key is kept when `JWT_SECRET_KEY` is unset.
    pub data_dir: PathBuf,
    pub auto_migrate: bool,
    /// Bootstrap: create this admin at start-up if no admin exists.
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    /// Database pool size; by default chosen per backend.
    pub db_max_connections: Option<u32>,
    /// How long a request waits for a database connection before it is answered 503, ms.
    pub db_acquire_timeout_ms: u64,
    /// PostgreSQL clients the per-request lookups are pipelined over (`store::pg_direct`); by
    /// default one per four cores, 0 sends every query through the pool.
    pub db_pipeline_connections: Option<usize>,
    /// Requests running longer are answered 503, seconds.
    pub request_timeout_secs: u64,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    pub password_min_length: usize,
    /// How many password hashes may run at once; by default the number of cores.
    pub hash_concurrency: Option<usize>,
    /// When set, `/metrics` answers only requests bearing `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// Also write logs to this file, rotated by size.
    pub log_file: Option<PathBuf>,
    /// Size at which the log file is rotated, bytes.
    pub log_file_max_bytes: u64,
    /// How many rotated log files are kept besides the current one.
    pub log_file_max_files: usize,
    /// After SIGTERM/SIGINT, how long in-flight requests may take before the process exits
    /// anyway, seconds, counted from the signal (the delay below included).
    pub shutdown_timeout_secs: u64,
    /// After SIGTERM/SIGINT, how long to keep accepting requests while `/readyz` answers 503,
    /// so load balancers stop sending traffic first, seconds.
    pub shutdown_delay_secs: u64,
    /// Login throttle on/off (counters per account and per client address, in the database).
    pub throttle_enabled: bool,
    /// Failed logins for one account before further attempts must wait (1 s, 2 s, 4 s…).
    pub throttle_account_slow_after: u32,
    /// Failed logins for one account that lock it.
    pub throttle_account_lock_after: u32,
    pub throttle_address_slow_after: u32,
    pub throttle_address_lock_after: u32,
    /// The first lock, seconds; each further lock in a window doubles it.
    pub throttle_lock_secs: u64,
    /// The longest lock, seconds.
    pub throttle_max_lock_secs: u64,
    /// A key with no failure for this long starts over, seconds.
    pub throttle_window_secs: u64,
    /// Comma-separated addresses of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: String,
    /// Comma-separated origins allowed to call the API from a browser; empty allows none.
    pub cors_origins: String,
    /// Requests per second one client address may make to the login, register and refresh
    /// routes (a per-process shield in front of the throttle); 0 turns it off.
    pub auth_rate_per_second: u32,
    /// How many such requests may come at once before the rate applies.
    pub auth_rate_burst: u32,
    /// Refuse the 3,000 most common passwords.
    pub password_deny_common: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/users.db".into(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8000,
            app_env: AppEnv::Development,
            jwt_secret_key: None,
            access_token_ttl: 15 * 60,
            refresh_token_ttl: 30 * 24 * 3600,
            refresh_grace_secs: 5,
            log_level: "info".into(),
            log_format: LogFormat::Pretty,
            data_dir: "data".into(),
            auto_migrate: true,
            admin_email: None,
            admin_password: None,
            db_max_connections: None,
            db_acquire_timeout_ms: 3_000,
            db_pipeline_connections: None,
            request_timeout_secs: 30,
            max_body_bytes: 64 * 1024,
            password_min_length: 8,
            hash_concurrency: None,
            metrics_token: None,
            log_file: None,
            log_file_max_bytes: 10 * 1024 * 1024,
            log_file_max_files: 10,
            shutdown_timeout_secs: 30,
            shutdown_delay_secs: 0,
            throttle_enabled: true,
            throttle_account_slow_after: 3,
            throttle_account_lock_after: 6,
            throttle_address_slow_after: 10,
            throttle_address_lock_after: 30,
            throttle_lock_secs: 30,
            throttle_max_lock_secs: 300,
            throttle_window_secs: 900,
            trusted_proxies: String::new(),
            cors_origins: String::new(),
            auth_rate_per_second: 20,
            auth_rate_burst: 40,
            password_deny_common: true,
        }
    }
}

/// Every setting's environment variable: the field name in upper case.
const ENV_KEYS: &[&str] = &[
    "database_url",
    "host",
    "port",
    "app_env",
    "jwt_secret_key",
    "access_token_ttl",
    "refresh_token_ttl",
    "refresh_grace_secs",
    "log_level",
    "log_format",
    "data_dir",
    "auto_migrate",
    "admin_email",
    "admin_password",
    "db_max_connections",
    "db_acquire_timeout_ms",
    "db_pipeline_connections",
    "request_timeout_secs",
    "max_body_bytes",
    "password_min_length",
    "hash_concurrency",
    "metrics_token",
    "log_file",
    "log_file_max_bytes",
    "log_file_max_files",
    "shutdown_timeout_secs",
    "shutdown_delay_secs",
    "throttle_enabled",
    "throttle_account_slow_after",
    "throttle_account_lock_after",
    "throttle_address_slow_after",
    "throttle_address_lock_after",
    "throttle_lock_secs",
    "throttle_max_lock_secs",
    "throttle_window_secs",
    "trusted_proxies",
    "cors_origins",
    "auth_rate_per_second",
    "auth_rate_burst",
    "password_deny_common",
];

/// Settings read verbatim from the environment, never parsed as numbers or booleans.
const TEXT_KEYS: &[&str] = &[
    "database_url",
    "jwt_secret_key",
    "admin_email",
    "admin_password",
    "log_level",
    "metrics_token",
    "log_file",
    "trusted_proxies",
    "cors_origins",
];

impl Settings {
    /// Loads settings from `users-api.toml` (or `config_file`), `.env` and the environment.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        // A missing .env is normal; a malformed one is worth failing on.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(e).context("reading .env"),
        }
        let file = config_file.unwrap_or(Path::new("users-api.toml"));
        if config_file.is_some() && !file.exists() {
            bail!("config file {} does not exist", file.display());
        }
        let mut settings: Settings = Figment::new()
            .merge(Toml::file(file))
            .merge(Env::raw().filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ENV_KEYS.contains(&k.as_str()) && !TEXT_KEYS.contains(&k.as_str())
            }))
            .extract()
            .context("invalid configuration (see the configuration table in README.md)")?;
        // Figment parses environment values as TOML scalars, which would turn a password such as
        // `00012345` into the number 12345. Text settings are therefore read verbatim.
        let text = |name: &str| std::env::var(name.to_ascii_uppercase()).ok();
        if let Some(v) = text("trusted_proxies") {
            settings.trusted_proxies = v;
        }
        if let Some(v) = text("cors_origins") {
            settings.cors_origins = v;
        }
        if let Some(v) = text("database_url") {
            settings.database_url = v;
        }
        if let Some(v) = text("jwt_secret_key") {
            settings.jwt_secret_key = Some(SecretString::new(v));
        }
        if let Some(v) = text("admin_email") {
            settings.admin_email = Some(v);
        }
        if let Some(v) = text("admin_password") {
            settings.admin_password = Some(SecretString::new(v));
        }
        if let Some(v) = text("log_level") {
            settings.log_level = v;
        }
        if let Some(v) = text("metrics_token") {
            // An empty token would be trivially guessable; treat it as unset.
            settings.metrics_token = (!v.is_empty()).then(|| SecretString::new(v));
        }
        if let Some(v) = text("log_file") {
            settings.log_file = (!v.is_empty()).then(|| PathBuf::from(v));
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Logs the settings in force, for whoever reads the start-up logs. Secrets show only
    /// whether they are set, and a password in the database URL is masked.
    pub fn log_effective(&self) {
        let secret = |value: Option<&SecretString>| if value.is_some() { "[set]" } else { "[unset]" };
        tracing::info!(
            database_url = %crate::store::redact_url(&self.database_url),
            host = %self.host,
            port = self.port,
            app_env = ?self.app_env,
            jwt_secret_key = secret(self.jwt_secret_key.as_ref()),
            access_token_ttl = self.access_token_ttl,
            refresh_token_ttl = self.refresh_token_ttl,
            refresh_grace_secs = self.refresh_grace_secs,
            log_level = %self.log_level,
            log_format = ?self.log_format,
            log_file = %self.log_file.as_deref().map_or("[unset]".into(), |p| p.display().to_string()),
            log_file_max_bytes = self.log_file_max_bytes,
            log_file_max_files = self.log_file_max_files,
            data_dir = %self.data_dir.display(),
            auto_migrate = self.auto_migrate,
            admin_email = self.admin_email.as_deref().unwrap_or("[unset]"),
            admin_password = secret(self.admin_password.as_ref()),
            db_max_connections = ?self.db_max_connections,
            db_acquire_timeout_ms = self.db_acquire_timeout_ms,
            db_pipeline_connections = ?self.db_pipeline_connections,
            request_timeout_secs = self.request_timeout_secs,
            max_body_bytes = self.max_body_bytes,
            password_min_length = self.password_min_length,
            hash_concurrency = ?self.hash_concurrency,
            metrics_token = secret(self.metrics_token.as_ref()),
            shutdown_timeout_secs = self.shutdown_timeout_secs,
            shutdown_delay_secs = self.shutdown_delay_secs,
            "effective configuration"
        );
    }

    /// Checks what serde cannot: ranges and the production secret.
    /// The trusted proxy addresses, parsed.
    pub fn trusted_proxy_addrs(&self) -> anyhow::Result<Vec<IpAddr>> {
        split_list(&self.trusted_proxies)
            .map(|a| {
                a.parse()
                    .with_context(|| format!("TRUSTED_PROXIES: {a:?} is not an IP address"))
            })
            .collect()
    }

    /// The CORS origins, as given.
    pub fn cors_origin_list(&self) -> Vec<String> {
        split_list(&self.cors_origins).map(str::to_owned).collect()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.trusted_proxy_addrs()?;
        for origin in self.cors_origin_list() {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
                bail!("CORS_ORIGINS: {origin:?} must be an origin such as https://app.example.com");
            }
        }
        if self.throttle_account_slow_after >= self.throttle_account_lock_after
            || self.throttle_address_slow_after >= self.throttle_address_lock_after
        {
            bail!("THROTTLE_*_SLOW_AFTER must be smaller than the matching THROTTLE_*_LOCK_AFTER");
        }
        if self.throttle_lock_secs == 0 || self.throttle_max_lock_secs < self.throttle_lock_secs {
            bail!("THROTTLE_LOCK_SECS must be positive and at most THROTTLE_MAX_LOCK_SECS");
        }
        if self.app_env == AppEnv::Production {
            match &self.jwt_secret_key {
                None => bail!(
                    "APP_ENV=production requires JWT_SECRET_KEY. Generate one with \
                     `openssl rand -base64 48` and set it in the environment."
                ),
                Some(key) if key.expose().len() < MIN_SECRET_BYTES => bail!(
                    "JWT_SECRET_KEY is {} bytes; production needs at least {MIN_SECRET_BYTES}. \
                     Generate one with `openssl rand -base64 48`.",
                    key.expose().len()
                ),
                Some(_) => {}
            }
        }
        if self.access_token_ttl == 0 || self.refresh_token_ttl == 0 {
            bail!("ACCESS_TOKEN_TTL and REFRESH_TOKEN_TTL must be positive numbers of seconds");
        }
        if !(4..=crate::domain::MAX_PASSWORD_LENGTH).contains(&self.password_min_length) {
            bail!("PASSWORD_MIN_LENGTH must be between 4 and 128");
        }
        if self.max_body_bytes < 1024 {
            bail!("MAX_BODY_BYTES must be at least 1024");
        }
        if self.log_file_max_bytes == 0 {
            bail!("LOG_FILE_MAX_BYTES must be a positive number of bytes");
        }
        if self.shutdown_delay_secs > 0 && self.shutdown_delay_secs >= self.shutdown_timeout_secs {
            bail!(
                "SHUTDOWN_DELAY_SECS ({}) must be shorter than SHUTDOWN_TIMEOUT_SECS ({}): the \
                 timeout counts from the signal and includes the delay",
                self.shutdown_delay_secs,
                self.shutdown_timeout_secs
            );
        }
        if self.admin_email.is_some() != self.admin_password.is_some() {
            bail!("ADMIN_EMAIL and ADMIN_PASSWORD must be set together");
        }
        Ok(())
    }
}

fn split_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_delay_must_fit_inside_the_timeout() {
        let with = |delay, timeout| Settings {
            shutdown_delay_secs: delay,
            shutdown_timeout_secs: timeout,
            ..Settings::default()
        };
        assert!(with(0, 30).validate().is_ok());
        assert!(with(5, 30).validate().is_ok());
        assert!(with(0, 0).validate().is_ok());
        let err = with(30, 30).validate().unwrap_err().to_string();
        assert!(err.contains("SHUTDOWN_DELAY_SECS"), "{err}");
    }

    #[test]
    fn a_zero_log_file_limit_is_refused() {
        let settings = Settings {
            log_file_max_bytes: 0,
            ..Settings::default()
        };
        assert!(settings.validate().is_err());
    }
}
