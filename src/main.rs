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

/// The settings people type on `serve` and `replica`, as `rekor-server
/// serve --port ...` users expect; each wins over the file and environment.
#[derive(clap::Args)]
struct ServerFlags {
    /// API address (listen).
    #[arg(long)]
    listen: Option<String>,
    /// Public host name clients use (hostname).
    #[arg(long)]
    hostname: Option<String>,
    /// PostgreSQL URL (database_url); prefer TLOG_DATABASE_URL, which `ps` does not show.
    #[arg(long)]
    database_url: Option<String>,
    /// Embedded journal directory (data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Signing key file (key_file).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Prometheus /metrics address (metrics_listen).
    #[arg(long)]
    metrics_listen: Option<String>,
}

impl ServerFlags {
    /// Applies the flags over `config` and validates the result.
    fn apply(self, config: &mut tlog::config::Config) -> anyhow::Result<()> {
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.hostname {
            config.hostname = v;
        }
        if let Some(v) = self.database_url {
            config.database_url = Some(v.into());
        }
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.key_file {
            config.key_file = v;
        }
        if let Some(v) = self.metrics_listen {
            config.metrics_listen = v;
        }
        config.validate()?;
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Rekor v1 API, reading and writing the log in Postgres
    /// (`database_url`) or, without one, in the embedded journal in `data_dir`.
    Serve {
        #[command(flatten)]
        flags: ServerFlags,
    },
    /// Serve the read-only half of the API from a verified db.jsonl snapshot.
    Replica {
        #[command(flatten)]
        flags: ServerFlags,
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
        /// Keep entries in memory rather than reading them from the file
        /// (replica.entries_in_memory).
        #[arg(long)]
        entries_in_memory: bool,
        /// A frozen shard's snapshot (`tlog export --shard ID`), oldest
        /// first, repeated for each (replica.frozen_shards).
        #[arg(long = "frozen-shard")]
        frozen_shards: Vec<PathBuf>,
        /// A v2 log's tiles directory to serve too (replica.v2_tiles).
        #[arg(long)]
        v2_tiles: Option<PathBuf>,
        /// The v2 log's Ed25519 public key (replica.v2_public_key).
        #[arg(long)]
        v2_public_key: Option<PathBuf>,
    },
    /// Write the configured log (Postgres or embedded) to a db.jsonl file,
    /// or with `--v2` a Rekor v2 log to a directory of its C2SP tiles.
    Export {
        /// Where to write; `-` for standard output. With `--v2`, a
        /// directory that must not exist yet.
        #[arg(long)]
        out: PathBuf,
        /// Export a Rekor v2 log (Postgres): the active one, or the one of
        /// `--origin`.
        #[arg(long)]
        v2: bool,
        /// With `--v2`: the origin of the v2 log to export (a frozen one).
        #[arg(long, requires = "v2")]
        origin: Option<String>,
        /// One v1 shard of a time-sharded log, by its ID in `tlog log list`
        /// (each shard is a file of its own).
        #[arg(long, conflicts_with = "v2")]
        shard: Option<i64>,
    },
    /// Load a db.jsonl file into the empty Postgres log named by
    /// database_url, or with `--v2` a v2 tiles directory as the v2 log of
    /// v2.origin, signed with v2.key_file.
    Import {
        /// The file to import; it must verify under key_file's public key
        /// (with `--v2`, the directory, under v2.key_file's).
        #[arg(long = "in")]
        input: PathBuf,
        /// Import a Rekor v2 log from a directory `tlog export --v2` wrote.
        #[arg(long)]
        v2: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// The logs on Postgres: `rotate` freezes the active v1 shard (or with
    /// `--v2` the v2 log) and starts a new one (Rekor's `inactiveShards`),
    /// `list` shows them.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Audit a db.jsonl export, a live v1 log by URL, or a Rekor v2 log by
    /// its tiles URL (given its Ed25519 key): every body, SET, index key,
    /// tile and checkpoint, under the given key. Exits 1 on the first
    /// problem, naming its line (or entry).
    Verify {
        /// The db.jsonl file, or the `http://` or `https://` base URL of a
        /// live v1 log, or of a v2 log's `checkpoint` and `tile/` (for
        /// tlog, `https://HOST/api/v2`, or `https://HOST/logs/ORIGIN` for
        /// a frozen one), or a directory of them (`tlog export --v2`).
        source: PathBuf,
        /// PEM public key of the log; nothing in the file is trusted. For
        /// a URL of a time-sharded log, the file may hold each shard's key.
        /// An Ed25519 key is a v2 log's: SOURCE is then its tiles URL.
        #[arg(long)]
        public_key: PathBuf,
        /// A signed checkpoint seen earlier: the log must extend it.
        #[arg(long)]
        since: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// With a URL: entry requests (10 entries each) in flight.
        #[arg(long, default_value_t = tlog::verify::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// With an `https://` URL: PEM CA certificates trusted besides the
        /// system's (a private log's CA).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// Follow a live Rekor v1 log: verify every new checkpoint against the
    /// last one (state in `--state-dir`), alert on inconsistency, split view,
    /// rollback or a stale log, and report entries of watched identities.
    Monitor {
        /// Base URL of the log (monitor.url).
        url: Option<String>,
        /// PEM public key of the log (monitor.public_key); after a rotation
        /// to a new key, a file holding the old and the new one.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Where the last verified checkpoint is kept (monitor.state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Poll once, print findings as JSON lines and exit: 1 on an alert,
        /// 2 when the log could not be read.
        #[arg(long)]
        once: bool,
        /// Seconds between polls (monitor.interval_secs).
        #[arg(long)]
        interval_secs: Option<u64>,
        /// Alert when the log has not grown for this long (monitor.stale_after_secs).
        #[arg(long)]
        stale_after_secs: Option<u64>,
        /// Without a state, the first entry to check (monitor.start_index).
        #[arg(long)]
        start_index: Option<u64>,
        /// URL that receives each finding as a JSON POST (monitor.webhook_url).
        #[arg(long)]
        webhook_url: Option<String>,
        /// PEM CA certificates trusted besides the system's for https://
        /// (monitor.ca_file).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Address of the /metrics endpoint (metrics_listen).
        #[arg(long)]
        metrics_listen: Option<String>,
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

#[derive(Subcommand)]
enum LogCommand {
    /// Freeze the active v1 shard at its last signed checkpoint and start a
    /// new one with a new tree ID; running servers exit and must be
    /// restarted (by their supervisor) to serve it. Then hand clients the
    /// new `tlog trust-config`.
    Rotate {
        /// Sign the new shard with this PKCS#8 P-256 key (`tlog keygen`)
        /// instead of the configured one; point `key_file` at it too, or
        /// the servers refuse to start on the new shard.
        #[arg(long, conflicts_with = "v2")]
        key_file: Option<PathBuf>,
        /// Rotate the Rekor v2 log instead: freeze it and register a new one
        /// with the configured `v2.origin` (set it, and `v2.key_file`, to
        /// the new log's first). The frozen one stays served at
        /// `/logs/<origin>/`.
        #[arg(long)]
        v2: bool,
    },
    /// List the v1 shards, oldest first, with the global indexes each holds,
    /// then the v2 logs.
    List,
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
            concurrency,
            ca_file,
        } => {
            let options = VerifyOptions {
                since: since.as_deref(),
                json,
                concurrency,
                ca_file: ca_file.as_deref(),
            };
            verify(&source, &public_key, &options).await
        }
        Command::Monitor {
            url,
            public_key,
            state_dir,
            once,
            interval_secs,
            stale_after_secs,
            start_index,
            webhook_url,
            ca_file,
            metrics_listen,
        } => {
            let mut config = tlog::config::Config::load(cli.config.as_deref())?;
            let m = &mut config.monitor;
            m.url = url.or(m.url.take());
            m.public_key = public_key.or(m.public_key.take());
            m.state_dir = state_dir.or(m.state_dir.take());
            m.interval_secs = interval_secs.unwrap_or(m.interval_secs);
            m.stale_after_secs = stale_after_secs.unwrap_or(m.stale_after_secs);
            m.start_index = start_index.or(m.start_index);
            m.webhook_url = webhook_url.or(m.webhook_url.take());
            m.ca_file = ca_file.or(m.ca_file.take());
            config.metrics_listen = metrics_listen.unwrap_or(config.metrics_listen);
            let telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            let outcome = tlog::app::monitor(&config, once).await;
            telemetry.shutdown();
            // 1: an alert; 2: the poll could not finish (or bad settings).
            match outcome {
                Ok(false) => Ok(()),
                Ok(true) => std::process::exit(1),
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    std::process::exit(2);
                }
            }
        }
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
                tlog::app::trust_config(&config, v1_url.as_deref(), v2_url.as_deref(), &valid_from)
                    .await?
            );
            Ok(())
        }
        Command::Log { command } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            match command {
                LogCommand::Rotate { key_file, v2 } => {
                    let (rotation, api) = if v2 {
                        (tlog::app::rotate_v2(&config).await?, "v2")
                    } else {
                        (tlog::app::rotate(&config, key_file.as_deref()).await?, "v1")
                    };
                    println!(
                        "froze {api} log {} at size {}; log {} is active",
                        rotation.frozen, rotation.frozen_size, rotation.active
                    );
                }
                LogCommand::List => print!("{}", tlog::app::list_shards(&config).await?),
            }
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
            flags,
            db,
            public_key,
            trust_embedded_key,
            state_dir,
            min_checkpoint,
            entries_in_memory,
            v2_tiles,
            v2_public_key,
            frozen_shards,
        } => {
            let mut config = tlog::config::Config::load(cli.config.as_deref())?;
            flags.apply(&mut config)?;
            config.replica.db = db.or(config.replica.db);
            config.replica.public_key = public_key.or(config.replica.public_key);
            config.replica.trust_embedded_key |= trust_embedded_key;
            config.replica.state_dir = state_dir.or(config.replica.state_dir);
            config.replica.min_checkpoint = min_checkpoint.or(config.replica.min_checkpoint);
            config.replica.entries_in_memory |= entries_in_memory;
            if !frozen_shards.is_empty() {
                config.replica.frozen_shards = frozen_shards;
            }
            config.replica.v2_tiles = v2_tiles.or(config.replica.v2_tiles);
            config.replica.v2_public_key = v2_public_key.or(config.replica.v2_public_key);
            let telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            let replica = tlog::replica::Replica::build(&config).await?;
            replica.run_until_stopped().await?;
            telemetry.shutdown();
            Ok(())
        }
        Command::Export {
            out,
            v2,
            origin,
            shard,
        } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            // Log lines (a torn journal tail, say) go to stderr as the server's do.
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            if v2 {
                tlog::app::export_v2(&config, origin.as_deref(), &out).await
            } else {
                tlog::app::export_v1(&config, &out, shard).await
            }
        }
        Command::Import { input, v2 } => {
            let config = tlog::config::Config::load(cli.config.as_deref())?;
            // Log lines (a torn journal tail, say) go to stderr as the server's do.
            let _telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            if v2 {
                tlog::app::import_v2(&config, &input).await
            } else {
                tlog::app::import(&config, &input).await
            }
        }
        Command::Serve { flags } => {
            let mut config = tlog::config::Config::load(cli.config.as_deref())?;
            flags.apply(&mut config)?;
            let telemetry = tlog::telemetry::init(config.otlp_endpoint.as_deref())?;
            let app = tlog::app::Application::build(&config).await?;
            app.run_until_stopped().await?;
            // Flush the spans of the last requests before exiting.
            telemetry.shutdown();
            Ok(())
        }
    }
}

/// `tlog verify`: prints the audit and exits 1 unless the file or log passed.
/// `tlog verify`'s flags besides the source and the key.
struct VerifyOptions<'a> {
    since: Option<&'a std::path::Path>,
    json: bool,
    concurrency: usize,
    ca_file: Option<&'a std::path::Path>,
}

async fn verify(
    source: &std::path::Path,
    public_key: &std::path::Path,
    options: &VerifyOptions<'_>,
) -> anyhow::Result<()> {
    let VerifyOptions {
        since,
        json,
        concurrency,
        ca_file,
    } = *options;
    use anyhow::Context;
    let pem = std::fs::read_to_string(public_key)
        .with_context(|| format!("couldn't read --public-key {}", public_key.display()))?;
    let since = since
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("couldn't read --since {}", path.display()))
        })
        .transpose()?;
    let url = source
        .to_str()
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"));
    // An Ed25519 key is a Rekor v2 log's: its URL is a tiles URL.
    if let Some(key) = tlog::signing::ed25519_public_key(&pem) {
        let report = match url {
            Some(url) => {
                tlog::verify::verify_tiles(url, &key, since.as_deref(), concurrency, ca_file).await
            }
            None if source.is_dir() => {
                let dir = tlog::verify::TileSource::Dir(source.to_owned());
                tlog::verify::verify_source(&dir, &key, since.as_deref(), concurrency, None).await
            }
            None => anyhow::bail!(
                "--public-key {} is an Ed25519 (Rekor v2) log key: give the log's tiles URL or \
                 directory (`tlog export --v2`), the base of its checkpoint and tile/ paths; \
                 a db.jsonl is a v1 log's",
                public_key.display()
            ),
        };
        return print_report(&report, json);
    }
    let keys = tlog::signing::LogKeys::from_pem(&pem).with_context(|| {
        format!(
            "--public-key {} is not a log key (or a PEM file of them)",
            public_key.display()
        )
    })?;
    let report = match url {
        Some(url) => {
            tlog::verify::verify_url(url, &keys, since.as_deref(), concurrency, ca_file).await
        }
        _ => {
            // A db.jsonl holds one log, signed by one key.
            let [verifier] = keys.keys() else {
                anyhow::bail!(
                    "--public-key {} holds {} keys; a db.jsonl is one log's: give its one key",
                    public_key.display(),
                    keys.keys().len()
                );
            };
            tlog::verify::verify_file(source, verifier, since.as_deref())
        }
    };
    print_report(&report, json)
}

/// Prints the audit and exits 1 when it failed.
fn print_report(report: &tlog::verify::Report, json: bool) -> anyhow::Result<()> {
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
