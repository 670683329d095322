//! `spawn_app`: the real application on a random port with its own database, plus a client
//! with typed helpers and ready-made users.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Client, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use users_api::clock::Clock;
use users_api::config::{AppEnv, LogFormat};
use users_api::domain::SecretString;
use users_api::services::{Core, accounts};
use users_api::{Application, Settings};

pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    fn env_var(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "TEST_POSTGRES_URL",
            Backend::Mysql => "TEST_MYSQL_URL",
        }
    }
}

/// Runs one async test body on every backend: `backend_test!(async fn name(app) { … });`
/// expands to `name::sqlite`, `name::postgres` and `name::mysql`.
macro_rules! backend_test {
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        backend_test!(@with |_| async {}, |_| {}; $(#[$meta])* async fn $name($app) $body);
    };
    (before = $before:path; $(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        backend_test!(@with $before, |_| {}; $(#[$meta])* async fn $name($app) $body);
    };
    (settings = $settings:expr; $(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        backend_test!(@with |_| async {}, $settings; $(#[$meta])* async fn $name($app) $body);
    };
    (@with $before:expr; $(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        backend_test!(@with $before, |_| {}; $(#[$meta])* async fn $name($app) $body);
    };
    (@with $before:expr, $settings:expr; $(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($app: $crate::helpers::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::helpers::spawn_app_after($crate::helpers::Backend::Sqlite, $settings, $before).await {
                    run(app).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_app_after($crate::helpers::Backend::Postgres, $settings, $before).await {
                    run(app).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                if let Some(app) = $crate::helpers::spawn_app_after($crate::helpers::Backend::Mysql, $settings, $before).await {
                    run(app).await
                }
            }
        }
    };
}

/// A running application and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub clock: Clock,
    pub core: Core,
    _database: TestDatabase,
    counter: AtomicU64,
}

/// Starts the application on `backend`, or returns `None` when that backend is not configured
/// (a failure instead when `REQUIRE_ALL_BACKENDS=1`).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with a chance to change the settings first.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    spawn_app_after(backend, configure, |_| async {}).await
}

/// Like [`spawn_app_with`], running `before` on the new, empty database's URL before the
/// application starts (to lay down an older schema, say).
pub async fn spawn_app_after<F, Fut>(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
    before: F,
) -> Option<TestApp>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Ok(level) = std::env::var("TEST_LOG") {
        // Set TEST_LOG=debug (or any filter) to see the applications' logs.
        let log = Settings {
            log_level: level,
            log_format: LogFormat::Pretty,
            ..Settings::default()
        };
        // The guard matters only for LOG_FILE, unset here; a second init is a no-op.
        let _ = users_api::telemetry::init(&log).map(std::mem::forget);
    }
    let database = TestDatabase::create(backend).await?;
    before(database.url.clone()).await;
    let mut settings = Settings {
        database_url: database.url.clone(),
        port: 0,
        app_env: AppEnv::Development,
        jwt_secret_key: Some(SecretString::new(JWT_SECRET)),
        log_format: LogFormat::Json,
        db_max_connections: Some(5),
        // Tests register dozens of users a second from one address; the shield has its own test.
        auth_rate_per_second: 0,
        ..Settings::default()
    };
    configure(&mut settings);
    let clock = Clock::system();
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("the application builds");
    let address = format!("http://{}", app.local_addr().expect("bound address"));
    let core = app.core().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Some(TestApp {
        address,
        client: Client::builder().build().expect("http client"),
        clock,
        core,
        _database: database,
        counter: AtomicU64::new(0),
    })
}

/// A registered user and a token for them.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A unique suffix for emails and usernames within this test.
    pub fn unique(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(reqwest::Method::POST, path, token, body).await
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send_json(reqwest::Method::PUT, path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// Logs in with the OAuth2 password form.
    pub async fn login_form(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/auth/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request sent")
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        self.login_pair(username, password).await.0
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn login_pair(&self, username: &str, password: &str) -> (String, String) {
        let response = self.login_form(username, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {username} failed");
        let body: Value = response.json().await.expect("json");
        (
            body["access_token"].as_str().expect("access_token").to_owned(),
            body["refresh_token"].as_str().expect("refresh_token").to_owned(),
        )
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", None, &json!({ "refresh_token": refresh_token }))
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.post(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn put(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.put(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// Registers a fresh ordinary user through the API and logs them in.
    pub async fn user(&self) -> TestUser {
        let n = self.unique();
        let email = format!("user{n}@example.com");
        let response = self
            .post_json(
                "/auth/register",
                None,
                &json!({"email": email, "password": PASSWORD, "username": format!("user{n}")}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        let token = self.login(&email, PASSWORD).await;
        TestUser {
            id: body["id"].as_i64().expect("id"),
            email,
            password: PASSWORD.into(),
            token,
        }
    }

    /// Creates an administrator (as `create-admin` does) and logs them in.
    pub async fn admin(&self) -> TestUser {
        let n = self.unique();
        let email = format!("admin{n}@example.com");
        let account =
            users_api::startup::admin_account(&self.core, &email, None, &SecretString::new(PASSWORD))
                .expect("valid admin account");
        let user = accounts::create_user(&self.core, account, true, true)
            .await
            .expect("admin created");
        let token = self.login(&email, PASSWORD).await;
        TestUser {
            id: user.id,
            email,
            password: PASSWORD.into(),
            token,
        }
    }
}

/// A database that exists for one test and is dropped after it.
pub(crate) struct TestDatabase {
    backend: Backend,
    pub(crate) url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    /// A fresh, empty database on `backend`; `None` when that backend is not configured.
    pub(crate) async fn create(backend: Backend) -> Option<Self> {
        let name = format!("users_api_test_{}", uuid::Uuid::new_v4().simple());
        if backend == Backend::Sqlite {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            return Some(Self {
                backend,
                url: format!("sqlite://{}", path.display()),
                server: String::new(),
                name: path.display().to_string(),
            });
        }
        let var = backend.env_var();
        let server = match std::env::var(var) {
            Ok(url) if !url.is_empty() => server_url(&url),
            _ => {
                if std::env::var("REQUIRE_ALL_BACKENDS").is_ok_and(|v| v == "1") {
                    panic!("REQUIRE_ALL_BACKENDS=1 but {var} is not set");
                }
                return None;
            }
        };
        let admin_url = match backend {
            Backend::Postgres => format!("{server}/postgres"),
            _ => server.clone(),
        };
        let admin = Database::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{var} is set but {admin_url} is unreachable: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        admin.close().await.ok();
        // Loopback needs no TLS; without it the service's pipelined PostgreSQL reads run (they
        // stay off where sqlx would encrypt), so every PostgreSQL test goes through them.
        let options = match backend {
            Backend::Postgres => "?sslmode=disable",
            _ => "",
        };
        Some(Self {
            backend,
            url: format!("{server}/{name}{options}"),
            server,
            name,
        })
    }
}

/// `postgres://u@h:5432/anything?x` → `postgres://u@h:5432`
fn server_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a database URL has a scheme");
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.name));
            }
            return;
        }
        let (backend, server, name) = (self.backend, self.server.clone(), self.name.clone());
        // Drop is synchronous; the database is dropped from a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let admin_url = match backend {
                    Backend::Postgres => format!("{server}/postgres"),
                    _ => server,
                };
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let sql = match backend {
                        Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        _ => format!("DROP DATABASE IF EXISTS {name}"),
                    };
                    let _ = admin.execute_unprepared(&sql).await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// Reads a JSON body, failing with the raw text if it is not JSON.
pub async fn body(response: Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}
