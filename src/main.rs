//! The `tlog` command: loads the configuration and calls into `app`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "A self-hosted, Rekor-compatible transparency log")]
struct Cli {
    /// Optional YAML configuration file; TLOG_* environment variables override it.
    #[arg(long, global = true, env = "TLOG_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Rekor v1 API, reading and writing the log in Postgres.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Write a new ECDSA P-256 signing key (PKCS#8 PEM, mode 0600).
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { out } => {
            let _telemetry = tlog::telemetry::init(None)?;
            tlog::app::keygen(&out)
        }
        Command::Migrate => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            tlog::app::connect(&config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            let telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            let app = tlog::app::Application::build(&config).await?;
            app.run_until_stopped().await?;
            // Flush the spans of the last requests before exiting.
            telemetry.shutdown();
            Ok(())
        }
    }
}
