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
    /// Serve the Rekor v1 API, reading and writing the log in Postgres
    /// (`database_url`) or, without one, in the embedded journal in `data_dir`.
    Serve,
    /// Serve the read-only half of the API from a verified db.jsonl snapshot.
    Replica {
        /// The snapshot (replica.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// PEM public key of the log (replica.public_key).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Trust the key written in the snapshot (replica.trust_embedded_key).
        #[arg(long)]
        trust_embedded_key: bool,
        /// Where the replica keeps its high-water mark (replica.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// A signed checkpoint every snapshot must extend (replica.min_checkpoint).
        #[arg(long)]
        min_checkpoint: Option<PathBuf>,
    },
    /// Write the configured log (Postgres or embedded) to a db.jsonl file.
    Export {
        /// Where to write; `-` for standard output.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a db.jsonl file into the empty Postgres log named by database_url.
    Import {
        /// The file to import; it must verify under key_file's public key.
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Audit a db.jsonl export: every body, SET, index key and checkpoint,
    /// under the given key. Exits 1 on the first problem, naming its line.
    Verify {
        /// The db.jsonl file.
        source: PathBuf,
        /// PEM public key of the log; nothing in the file is trusted.
        #[arg(long)]
        public_key: PathBuf,
        /// A signed checkpoint seen earlier: the log must extend it.
        #[arg(long)]
        since: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the Sigstore ClientTrustConfig (trusted root + signing config
    /// v0.2) listing this server's v1 and v2 logs, for `--trust-config` of
    /// sigstore-python and cosign's `--trusted-root`/`--signing-config`.
    TrustConfig {
        /// Public URL of the v1 API (default `https://<hostname>`).
        #[arg(long)]
        v1_url: Option<String>,
        /// Public URL of the v2 log (default `https://<v2.origin>`); its
        /// origin must be a substring of it for sigstore-js.
        #[arg(long)]
        v2_url: Option<String>,
        /// When the logs' keys became valid (RFC 3339); entries integrated
        /// before it do not verify.
        #[arg(long, default_value = "2020-01-01T00:00:00Z")]
        valid_from: String,
    },
    /// Write a new ECDSA P-256 signing key (PKCS#8 PEM, mode 0600), or with
    /// `--pkcs11` create it on the token of `signer.pkcs11`.
    Keygen {
        /// Where to write the key; with `--pkcs11`, the public key (optional).
        #[arg(long, required_unless_present = "pkcs11")]
        out: Option<PathBuf>,
        /// Create the key pair on the PKCS#11 token (signer.pkcs11.*) and print its public key.
        #[arg(long)]
        pkcs11: bool,
        /// `ecdsa-p256` (default): the v1 log's key (`key_file`). `ed25519`:
        /// a Rekor v2 log's key (`v2.key_file`).
        #[arg(long, default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "ed25519"], conflicts_with = "pkcs11")]
        algorithm: String,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify {
            source,
            public_key,
            since,
            json,
        } => verify(&source, &public_key, since.as_deref(), json),
        Command::Keygen {
            out, pkcs11: true, ..
        } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            let _telemetry = tlog::telemetry::init(None)?;
            let pem = tlog::app::keygen_pkcs11(&config, out.as_deref())?;
            print!("{pem}");
            Ok(())
        }
        Command::Keygen {
            out,
            pkcs11: false,
            algorithm,
        } => {
            let _telemetry = tlog::telemetry::init(None)?;
            let out = out.expect("clap requires --out without --pkcs11");
            if algorithm == "ed25519" {
                tlog::app::keygen_ed25519(&out)
            } else {
                tlog::app::keygen(&out)
            }
        }
        Command::TrustConfig {
            v1_url,
            v2_url,
            valid_from,
        } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            let _telemetry = tlog::telemetry::init(None)?;
            print!(
                "{}",
                tlog::app::trust_config(
                    &config,
                    v1_url.as_deref(),
                    v2_url.as_deref(),
                    &valid_from
                )?
            );
            Ok(())
        }
        Command::Migrate => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            tlog::app::connect(&config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Replica {
            db,
            public_key,
            trust_embedded_key,
            state_dir,
            min_checkpoint,
        } => {
            let mut config = tlog::config::Config::load(cli.config.as_deref())?;
            config.replica.db = db.or(config.replica.db);
            config.replica.public_key = public_key.or(config.replica.public_key);
            config.replica.trust_embedded_key |= trust_embedded_key;
            config.replica.state_dir = state_dir.or(config.replica.state_dir);
            config.replica.min_checkpoint = min_checkpoint.or(config.replica.min_checkpoint);
            let telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            let replica = tlog::replica::Replica::build(&config).await?;
            replica.run_until_stopped().await?;
            telemetry.shutdown();
            Ok(())
        }
        Command::Export { out } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            // Log lines (a torn journal tail, say) go to stderr as the server's do.
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            tlog::app::export(&config, &out).await
        }
        Command::Import { input } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            // Log lines (a torn journal tail, say) go to stderr as the server's do.
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            tlog::app::import(&config, &input).await
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

/// `tlog verify`: prints the audit and exits 1 unless the file passed.
fn verify(
    source: &std::path::Path,
    public_key: &std::path::Path,
    since: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let pem = std::fs::read_to_string(public_key)
        .with_context(|| format!("couldn't read --public-key {}", public_key.display()))?;
    let verifier = tlog::signing::LogVerifier::from_pem(&pem)
        .with_context(|| format!("--public-key {} is not a log key", public_key.display()))?;
    let since = since
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("couldn't read --since {}", path.display()))
        })
        .transpose()?;
    let report = tlog::verify::verify_file(source, &verifier, since.as_deref());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if !report.ok() {
        std::process::exit(1);
    }
    Ok(())
}
