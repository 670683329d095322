//! The `users-api` binary: serving, migrations, create-admin and logging, run as a user would.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_users-api");

/// A scratch folder with its own SQLite database.
pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

impl Scratch {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("users-api-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", format!("sqlite://{}/users.db", self.0.display()))
            .env("JWT_SECRET_KEY", crate::helpers::JWT_SECRET);
        cmd
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `users-api serve`, stopped when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) logs: std::sync::mpsc::Receiver<String>,
    /// The lines logged before "listening".
    pub(crate) startup: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `serve` on a free port and waits until it listens.
pub(crate) fn serve(scratch: &Scratch, extra: &[(&str, &str)]) -> Server {
    let mut cmd = scratch.command();
    cmd.env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("users-api starts");
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no stdout");
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut server = Server {
        child,
        base: String::new(),
        logs: rx,
        startup: Vec::new(),
    };
    loop {
        let line = server
            .logs
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("a 'listening' log line");
        if line.contains("users-api listening") {
            let log: serde_json::Value = serde_json::from_str(&line).expect("json log line");
            let address = log["address"].as_str().expect("address field").to_owned();
            server.base = format!("http://{address}");
            return server;
        }
        server.startup.push(line);
    }
}

#[tokio::test]
async fn serve_logs_json_with_request_ids_and_never_secrets() {
    let scratch = Scratch::new();
    let server = serve(&scratch, &[]);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let password = "a-very-secret-password-9";
    let r = client
        .post(format!("{base}/auth/register"))
        .json(&serde_json::json!({"email": "log@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client
        .post(format!("{base}/auth/login"))
        .form(&[("username", "log@example.com"), ("password", password)])
        .send()
        .await
        .unwrap();
    let token = r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client
        .get(format!("{base}/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<String> = server.logs.try_iter().collect();
    drop(server);
    let text = lines.join("\n");
    assert!(!text.contains(password), "a password reached the logs");
    assert!(!text.contains(&token), "a token reached the logs");
    let me_line = lines
        .iter()
        .find(|l| l.contains(&request_id))
        .unwrap_or_else(|| panic!("no log line with request id {request_id}:\n{text}"));
    let entry: serde_json::Value = serde_json::from_str(me_line).unwrap();
    assert_eq!(entry["message"], "request completed");
    assert_eq!(entry["status"], 200);
    assert!(entry["latency_us"].is_number());
    let span = &entry["span"];
    assert_eq!(span["route"], "/auth/me");
    assert_eq!(span["method"], "GET");
    assert!(span["user_id"].is_number(), "user id missing: {me_line}");
}

/// With the log filter applied per layer, sqlx's `log`-crate queries on PostgreSQL made the
/// next event vanish (tokio-rs/tracing#2519): under `warn,users_api=info` that was the
/// "listening" line, which `serve` here (and the CI scripts) wait for.
#[tokio::test]
async fn serve_on_postgres_logs_listening_under_a_narrow_log_filter() {
    let Some(database) = crate::helpers::TestDatabase::create(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let scratch = Scratch::new();
    let server = serve(
        &scratch,
        &[
            ("DATABASE_URL", &database.url),
            ("LOG_LEVEL", "warn,users_api=info"),
        ],
    );
    assert!(server.base.starts_with("http://127.0.0.1:"), "{}", server.base);
}

#[test]
fn create_admin_reads_the_password_from_stdin_and_the_admin_can_log_in() {
    let scratch = Scratch::new();
    let mut child = scratch
        .command()
        .args([
            "create-admin",
            "--email",
            "root@example.com",
            "--username",
            "root",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"admin-password-123\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created administrator root@example.com"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = serve(&scratch, &[]);
    let base = server.base.clone();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{base}/auth/login"))
            .form(&[("username", "root"), ("password", "admin-password-123")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let token = r.json::<serde_json::Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let me: serde_json::Value = client
            .get(format!("{base}/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["is_admin"], true);
    });
    drop(server);

    // A weak password is refused with a clear message.
    let mut child = scratch
        .command()
        .args(["create-admin", "--email", "weak@example.com"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin password"));
}

#[test]
fn admin_email_and_password_bootstrap_the_first_admin() {
    let scratch = Scratch::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = serve(
        &scratch,
        &[
            ("ADMIN_EMAIL", "boot@example.com"),
            ("ADMIN_PASSWORD", "00012345678"),
        ],
    );
    let base = server.base.clone();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{base}/auth/login"))
            .form(&[("username", "boot@example.com"), ("password", "00012345678")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the numeric-looking password must be kept verbatim"
        );
    });
    drop(server);
}

#[test]
fn migrate_commands_report_status_and_round_trip() {
    let scratch = Scratch::new();
    let run = |args: &[&str]| {
        let out = scratch.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["migrate", "status"]).contains("Pending"));
    let up = run(&["migrate", "up"]);
    assert!(
        up.contains("Applied") && up.contains("m20260101_000001_users_and_sessions"),
        "{up}"
    );
    assert!(run(&["migrate", "down"]).contains("Pending"));
    assert!(run(&["migrate", "up"]).contains("Applied"));
    let refused = scratch.command().args(["migrate", "fresh"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
}

#[test]
fn production_refuses_to_start_without_a_strong_key() {
    let scratch = Scratch::new();
    let out = scratch
        .command()
        .env_remove("JWT_SECRET_KEY")
        .env("APP_ENV", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("JWT_SECRET_KEY") && err.contains("openssl rand"),
        "{err}"
    );
    let out = scratch
        .command()
        .env("JWT_SECRET_KEY", "short")
        .env("APP_ENV", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}

#[test]
fn openapi_command_prints_the_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(spec["paths"]["/auth/login"].is_object());
}

#[test]
fn healthcheck_exits_zero_only_when_the_service_is_alive() {
    let scratch = Scratch::new();
    let server = serve(&scratch, &[]);
    let ok = Command::new(BIN)
        .args(["healthcheck", "--url", &format!("{}/healthz", server.base)])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let not_found = Command::new(BIN)
        .args(["healthcheck", "--url", &format!("{}/nope", server.base)])
        .output()
        .unwrap();
    assert!(!not_found.status.success());
    drop(server);
    let down = Command::new(BIN)
        .args(["healthcheck", "--url", "http://127.0.0.1:9/healthz"])
        .output()
        .unwrap();
    assert!(!down.status.success());
}

#[test]
fn seed_rbac_is_idempotent_and_restores_a_deleted_builtin_role() {
    let scratch = Scratch::new();
    for _ in 0..2 {
        let out = scratch.command().arg("seed-rbac").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut child = scratch
        .command()
        .args(["create-admin", "--email", "root@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"admin-password-123\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let roles = |base: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/auth/login"))
                .form(&[
                    ("username", "root@example.com"),
                    ("password", "admin-password-123"),
                ])
                .send()
                .await
                .unwrap();
            let token = r.json::<serde_json::Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
            let roles: serde_json::Value = client
                .get(format!("{base}/rbac/roles"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (token, roles)
        }
    };

    let server = serve(&scratch, &[]);
    rt.block_on(async {
        let (token, roles) = roles(server.base.clone()).await;
        assert_eq!(
            roles.as_array().unwrap().len(),
            3,
            "seeding twice created no duplicates"
        );
        let r = client
            .delete(format!("{}/rbac/roles/2", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    });
    drop(server);

    let out = scratch.command().arg("seed-rbac").output().unwrap();
    assert!(out.status.success());
    let server = serve(&scratch, &[]);
    rt.block_on(async {
        let (_, roles) = roles(server.base.clone()).await;
        let moderator = roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "moderator")
            .expect("moderator is back");
        let perms: Vec<&str> = moderator["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(perms, ["user:read", "user:write"]);
    });
}

#[test]
fn import_reports_dry_runs_and_is_idempotent() {
    let scratch = Scratch::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (source, path) = rt.block_on(crate::import::uservault_fixture());
    let run = |extra: &[&str]| {
        let out = scratch
            .command()
            .args(["import", "--from", &source])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dry = run(&["--dry-run"]);
    assert!(
        dry.contains("7 users read (UserVault format): 3 imported, 4 skipped (dry run: nothing was written)"),
        "{dry}"
    );
    assert!(
        dry.contains("skipped row 4 (not-an-email): invalid email"),
        "{dry}"
    );
    let real = run(&["--format", "uservault"]);
    assert!(real.contains("3 imported, 4 skipped\n"), "{real}");
    let again = run(&[]);
    assert!(again.contains("0 imported, 7 skipped"), "{again}");
    let bad = scratch
        .command()
        .args(["import", "--from", "sqlite:///nonexistent/x.db"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("opening the source database"));
    let _ = std::fs::remove_file(path);
}
