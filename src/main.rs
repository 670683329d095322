//! The `users-api` command: serve (the default), migrate, create-admin, openapi.

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
    /// Print the OpenAPI document.
    Openapi,
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
    if let Some(Command::Openapi) = cli.command {
        println!("{}", users_api::http::openapi_json());
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log_level, settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate { action } => migrate(&settings, action).await,
        Command::CreateAdmin { email, username } => create_admin(settings, &email, username.as_deref()).await,
        Command::Openapi => Ok(()),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
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
