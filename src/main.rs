//! The `users-api` command: serve (the default), migrate, create-admin, seed-rbac, import,
//! openapi, healthcheck.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sea_orm_migration::MigratorTrait;
use users_api::clock::Clock;
use users_api::domain::SecretString;
use users_api::services::accounts;
use users_api::store::migrations::Migrator;
use users_api::{Application, Settings, startup, telemetry};

#[derive(Parser)]
#[command(name = "users-api", version, about = "User management service")]
struct Cli {
    /// Settings file (default: ./users-api.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply, revert or inspect database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Create an administrator. The password is read from the terminal, or from the first line
    /// of standard input when it is not a terminal; never from an argument.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
    },
    /// Import the users of a UserVault (Flask) or QuizApp (FastAPI) database, keeping their
    /// password hashes. Idempotent; writes nothing on --dry-run or on error.
    Import {
        /// The source database URL (sqlite://…, postgres://…, mysql://…).
        #[arg(long = "from", value_name = "URL")]
        from: String,
        #[arg(long, value_enum, default_value_t = ImportFormat::Auto)]
        format: ImportFormat,
        /// Report what would be imported without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create whatever is missing of the built-in roles and permissions (idempotent; never
    /// changes or removes what exists).
    SeedRbac,
    /// Print the OpenAPI document.
    Openapi,
    /// Exit 0 when the service answers 200 at its liveness URL, 1 otherwise (for container
    /// health checks; needs no shell or curl in the image).
    Healthcheck {
        /// Default: http://127.0.0.1:$PORT/healthz (PORT defaults to 8000).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportFormat {
    /// Detect from the tables present.
    Auto,
    /// Table `user` (id, username, email, password_hash).
    Uservault,
    /// Table `users` of the FastAPI service.
    Quizapp,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (all, or the next N).
    Up { steps: Option<u32> },
    /// Revert the last N applied migrations (default 1).
    Down { steps: Option<u32> },
    /// List migrations and whether each is applied.
    Status,
    /// Drop every table and apply all migrations again. Destroys all data.
    Fresh {
        /// Confirm that all data may be destroyed.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    users_api::auth::password::tune_allocator();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Openapi) => {
            println!("{}", users_api::http::openapi_json());
            return Ok(());
        }
        Some(Command::Healthcheck { url }) => {
            let port = std::env::var("PORT").unwrap_or_else(|_| "8000".into());
            let url = url
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{port}/healthz"));
            return healthcheck(&url).await;
        }
        _ => {}
    }
    let settings = Settings::load(cli.config.as_deref())?;
    // Held to the end of the process: dropping it flushes the log file.
    let _log_guard = telemetry::init(&settings)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate { action } => migrate(&settings, action).await,
        Command::CreateAdmin { email, username } => create_admin(settings, &email, username.as_deref()).await,
        Command::SeedRbac => seed_rbac(&settings).await,
        Command::Import {
            from,
            format,
            dry_run,
        } => import(settings, &from, format, dry_run).await,
        Command::Openapi | Command::Healthcheck { .. } => Ok(()),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    settings.log_effective();
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.local_addr()?, "users-api listening");
    app.run_until_stopped().await
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let db = startup::connect(settings).await?;
    match action {
        MigrateAction::Up { steps } => Migrator::up(&db, steps).await?,
        MigrateAction::Down { steps } => Migrator::down(&db, Some(steps.unwrap_or(1))).await?,
        MigrateAction::Fresh { yes } => {
            if !yes {
                bail!("`migrate fresh` drops every table; run it again with --yes to confirm");
            }
            Migrator::fresh(&db).await?;
        }
        MigrateAction::Status => {}
    }
    for migration in Migrator::get_migration_with_status(&db).await? {
        println!("{:<10} {}", format!("{:?}", migration.status()), migration.name());
    }
    Ok(())
}

async fn import(settings: Settings, from: &str, format: ImportFormat, dry_run: bool) -> anyhow::Result<()> {
    let db = startup::connect(&settings).await?;
    if settings.auto_migrate {
        Migrator::up(&db, None)
            .await
            .context("applying database migrations")?;
    }
    let core = startup::core(&settings, db, Clock::system())?;
    let format = match format {
        ImportFormat::Auto => None,
        ImportFormat::Uservault => Some(users_api::import::Format::UserVault),
        ImportFormat::Quizapp => Some(users_api::import::Format::QuizApp),
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} users {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let (format, report) = users_api::import::run(&core, from, format, dry_run, &progress).await?;
    bar.finish_and_clear();
    println!(
        "{} users read ({format:?} format): {} imported, {} skipped{}",
        report.read,
        report.imported,
        report.skipped.len(),
        if dry_run {
            " (dry run: nothing was written)"
        } else {
            ""
        }
    );
    if report.dropped_fields > 0 {
        println!("{} invalid profile values were left out", report.dropped_fields);
    }
    for (row, reason) in &report.skipped {
        println!("skipped {row}: {reason}");
    }
    Ok(())
}

async fn seed_rbac(settings: &Settings) -> anyhow::Result<()> {
    let db = startup::connect(settings).await?;
    if settings.auto_migrate {
        Migrator::up(&db, None)
            .await
            .context("applying database migrations")?;
    }
    users_api::store::rbac::seed_catalogue(&db)
        .await
        .context("seeding roles and permissions")?;
    println!("built-in roles and permissions are in place");
    Ok(())
}

async fn create_admin(settings: Settings, email: &str, username: Option<&str>) -> anyhow::Result<()> {
    let db = startup::connect(&settings).await?;
    if settings.auto_migrate {
        Migrator::up(&db, None)
            .await
            .context("applying database migrations")?;
    }
    let core = startup::core(&settings, db, Clock::system())?;
    let password = read_password()?;
    let account = startup::admin_account(&core, email, username, &password)?;
    let user = accounts::create_user(&core, account, true, true)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("created administrator {} (id {})", user.email, user.id);
    Ok(())
}

fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        Ok(SecretString::new(first))
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(SecretString::new(line.trim_end_matches(['\r', '\n'])))
    }
}

/// One plain HTTP/1.1 GET with a 3-second deadline; success means status 200.
async fn healthcheck(url: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let parsed = url::Url::parse(url).with_context(|| format!("invalid URL {url}"))?;
    if parsed.scheme() != "http" {
        bail!("healthcheck speaks plain http only");
    }
    let host = parsed.host_str().context("the URL has no host")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let check = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            parsed.path()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head)
    };
    let head = tokio::time::timeout(std::time::Duration::from_secs(3), check)
        .await
        .context("timed out")??;
    if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        bail!("unhealthy: {}", String::from_utf8_lossy(&head))
    }
}
