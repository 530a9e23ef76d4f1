//! The log key on a PKCS#11 token (issue 16), tested with a real SoftHSM2:
//! each test gets its own token in one throwaway token directory.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use serde_json::Value;
use tlog::app::Application;
use tlog::config::{Config, Pkcs11Config, SignerKind};
use tlog::signing::{LogSigner, LogVerifier, SetFields};

use crate::helpers::{only_entry, spawn_with, test_config, verify_entry, ClientKey};

/// The user PIN of every test token.
const PIN: &str = "4321-test-pin";

/// SoftHSM2 with its configuration and token directory under a temp dir.
struct SoftHsm {
    module: PathBuf,
    tokens: PathBuf,
    pin_file: PathBuf,
    /// Labels of the tokens, one per test.
    labels: Vec<String>,
}

/// Sets up SoftHSM once per test process: SoftHSM reads `SOFTHSM2_CONF`
/// when the module is first initialised, and a module is one state per
/// process, so every test shares the directory and makes its own token.
fn softhsm() -> &'static SoftHsm {
    static HSM: OnceLock<SoftHsm> = OnceLock::new();
    HSM.get_or_init(|| {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("SoftHSM2 is missing; scripts/test.sh installs it (apt-get install softhsm2)");
        let dir = std::env::temp_dir().join(format!("tlog-softhsm-{}", uuid::Uuid::new_v4()));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let pin_file = dir.join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        let labels = (0..TOKENS)
            .map(|i| {
                let label = format!("tlog-test-{i}");
                let out = std::process::Command::new("softhsm2-util")
                    .args(["--init-token", "--free", "--label", &label])
                    .args(["--so-pin", "8765-so", "--pin", PIN])
                    .output()
                    .expect("softhsm2-util runs");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                label
            })
            .collect();
        SoftHsm {
            module,
            tokens,
            pin_file,
            labels,
        }
    })
}

/// Held by every test here: the outage test takes the shared token
/// directory away, which no other token test may see.
async fn hsm_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Tokens made before the module is loaded: SoftHSM2 lists the tokens of
/// its directory when it is initialised, and does not see tokens other
/// processes add later.
const TOKENS: usize = 12;

/// A token of its own for each test: the label of the next one.
fn new_token() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let hsm = softhsm();
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    hsm.labels.get(next).cloned().expect("raise TOKENS")
}

fn pkcs11_config(token_label: &str, key_label: &str) -> Pkcs11Config {
    let hsm = softhsm();
    Pkcs11Config {
        module: Some(hsm.module.clone()),
        token_label: Some(token_label.to_owned()),
        key_label: Some(key_label.to_owned()),
        pin_file: Some(hsm.pin_file.clone()),
        sessions: Some(4),
    }
}

/// A Postgres test config whose signer is `key_label` on `token`.
async fn hsm_config(token: &str, key_label: &str) -> Config {
    let mut config = test_config().await;
    config.signer.kind = SignerKind::Pkcs11;
    config.signer.pkcs11 = pkcs11_config(token, key_label);
    // No key file: the log must not fall back to one.
    config.key_file = PathBuf::from("/nonexistent/tlog-key.pem");
    config.validate().unwrap();
    config
}

/// A new token with a log key made by `tlog keygen --pkcs11`; returns the
/// config and the public key keygen printed.
async fn log_on_new_token() -> (Config, String) {
    let token = new_token();
    let config = hsm_config(&token, "log-key").await;
    let pem = tlog::app::keygen_pkcs11(&config, None).expect("keygen --pkcs11");
    (config, pem)
}

fn start_error(result: anyhow::Result<Application>) -> String {
    match result {
        Ok(_) => panic!("the server started"),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn keygen_makes_a_token_key_that_cannot_be_extracted() {
    let _hsm = hsm_lock().await;
    let (config, pem) = log_on_new_token().await;
    let token = config.signer.pkcs11.token_label.clone().unwrap();
    // Read the attributes back through a session of our own.
    let ctx = Pkcs11::new(&softhsm().module).unwrap();
    let _ = ctx.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == token)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&PIN.to_owned().into()));
    let keys = session
        .find_objects(&[
            Attribute::Token(true),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"log-key".to_vec()),
        ])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let attributes = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::Token,
                AttributeType::NeverExtractable,
            ],
        )
        .unwrap();
    for attribute in &attributes {
        match attribute {
            Attribute::Extractable(v) => assert!(!v, "CKA_EXTRACTABLE must be false"),
            Attribute::Sensitive(v) => assert!(v, "CKA_SENSITIVE must be true"),
            Attribute::Token(v) => assert!(v, "CKA_TOKEN must be true"),
            Attribute::NeverExtractable(v) => assert!(v, "CKA_NEVER_EXTRACTABLE must be true"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(attributes.len(), 4, "{attributes:?}");
    // The private value is not readable.
    let value = session.get_attributes(keys[0], &[AttributeType::Value]);
    assert!(
        !matches!(value.as_deref(), Ok([Attribute::Value(_)])),
        "{value:?}"
    );
    // keygen's public key is the one the signer reads from the token.
    let signer = tlog::app::open_signer(&config).unwrap();
    assert_eq!(signer.public_key_pem(), pem);
    // A second keygen with the label refuses to shadow the key.
    let err = tlog::app::keygen_pkcs11(&config, None).unwrap_err();
    assert!(
        format!("{err:#}").contains("already has a key labelled"),
        "{err:#}"
    );
}

#[tokio::test]
async fn token_signatures_are_der_and_verify_under_the_tokens_public_key() {
    let _hsm = hsm_lock().await;
    let (config, pem) = log_on_new_token().await;
    let signer = tlog::app::open_signer(&config).unwrap();
    let verifier = LogVerifier::from_pem(&pem).unwrap();
    // A batch large enough to be signed on several sessions at once.
    let bodies: Vec<String> = (0..100)
        .map(|i| BASE64_STANDARD.encode(format!("body {i}")))
        .collect();
    let fields: Vec<SetFields<'_>> = (0u64..)
        .zip(&bodies)
        .map(|(i, body_b64)| SetFields {
            body_b64,
            integrated_time: 1_700_000_000,
            log_index: 7 + i,
        })
        .collect();
    let sets = signer.sign_sets(&fields).unwrap();
    assert_eq!(sets.len(), 100);
    for (set, field) in sets.iter().zip(&fields) {
        assert_eq!(set[0], 0x30, "DER SEQUENCE, not raw r||s");
        verifier
            .verify_set(field.body_b64, field.integrated_time, field.log_index, set)
            .unwrap();
    }
    // Order matters: a SET does not verify for its neighbour's index.
    assert!(verifier
        .verify_set(&bodies[1], 1_700_000_000, 7, &sets[1])
        .is_err());
    let one = signer.sign_set(&bodies[0], 1, 2).unwrap();
    verifier.verify_set(&bodies[0], 1, 2, &one).unwrap();
}

#[tokio::test]
async fn serve_with_a_token_key_signs_entries_clients_verify() {
    let _hsm = hsm_lock().await;
    let (config, pem) = log_on_new_token().await;
    let app = spawn_with(config).await;
    let served = app.get("/api/v1/log/publicKey").await.text().await.unwrap();
    assert_eq!(served, pem, "the log serves the token's public key");
    let key = ClientKey::new();
    let mut created = Vec::new();
    for i in 0..20 {
        let response = app
            .create(&key.hashedrekord(format!("hsm {i}").as_bytes()))
            .await;
        assert_eq!(response.status(), 201);
        created.push(only_entry(&response.json::<Value>().await.unwrap()));
    }
    for (id, entry) in &created {
        verify_entry(&app, id, entry);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_export_of_a_token_log_verifies_in_a_replica_given_the_tokens_key() {
    let _hsm = hsm_lock().await;
    let (config, pem) = log_on_new_token().await;
    let app = spawn_with(config).await;
    let key = ClientKey::new();
    for i in 0..5 {
        let response = app
            .create(&key.hashedrekord(format!("replicated {i}").as_bytes()))
            .await;
        assert_eq!(response.status(), 201);
    }
    let dir = std::env::temp_dir().join(format!("tlog-hsm-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("db.jsonl");
    let mut out = Vec::new();
    tlog::export::export(
        app.log.store(),
        &mut out,
        &mut tlog::export::Progress::new("test", 0),
    )
    .await
    .unwrap();
    std::fs::write(&db, out).unwrap();
    let public_key = dir.join("log.pub");
    std::fs::write(&public_key, &pem).unwrap();
    let replica = replica_serving(&db, &public_key).await;
    let body: Value = reqwest::get(format!("{replica}/api/v1/log"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["treeSize"], 5);
    // The same file under another key is refused.
    let other = dir.join("other.pub");
    std::fs::write(
        &other,
        LogSigner::from_pkcs8_pem(&LogSigner::generate_pkcs8_pem().unwrap())
            .unwrap()
            .public_key_pem(),
    )
    .unwrap();
    assert!(tlog::replica::Replica::build(&replica_config(&db, &other))
        .await
        .is_err());
    app.stop().await;
}

fn replica_config(db: &Path, public_key: &Path) -> Config {
    use figment::providers::{Format, Yaml};
    let yaml = format!(
        "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nreplica:\n  db: {}\n  public_key: {}\n",
        db.display(),
        public_key.display()
    );
    let config: Config = figment::Figment::new()
        .merge(Yaml::string(&yaml))
        .extract()
        .unwrap();
    config.validate().unwrap();
    config
}

async fn replica_serving(db: &Path, public_key: &Path) -> String {
    let replica = tlog::replica::Replica::build(&replica_config(db, public_key))
        .await
        .expect("the replica verifies the export under the token's key");
    let address = format!("http://127.0.0.1:{}", replica.port());
    tokio::spawn(replica.run_until_stopped());
    address
}

#[tokio::test]
async fn a_wrong_pin_stops_start_up_naming_pin_file() {
    let _hsm = hsm_lock().await;
    let (mut config, _) = log_on_new_token().await;
    let bad = softhsm().tokens.with_file_name("bad-pin");
    std::fs::write(&bad, "0000\n").unwrap();
    config.signer.pkcs11.pin_file = Some(bad);
    let err = start_error(Application::build(&config).await);
    assert!(err.contains("signer.pkcs11.pin_file"), "{err}");
    assert!(err.contains("PinIncorrect"), "{err}");
    assert!(!err.contains(PIN));
}

#[tokio::test]
async fn a_missing_token_stops_start_up_naming_token_label() {
    let _hsm = hsm_lock().await;
    let (mut config, _) = log_on_new_token().await;
    config.signer.pkcs11.token_label = Some("no-such-token".into());
    let err = start_error(Application::build(&config).await);
    assert!(err.contains("signer.pkcs11.token_label"), "{err}");
    assert!(err.contains("no-such-token"), "{err}");
}

#[tokio::test]
async fn a_missing_key_stops_start_up_naming_key_label() {
    let _hsm = hsm_lock().await;
    let (mut config, _) = log_on_new_token().await;
    config.signer.pkcs11.key_label = Some("no-such-key".into());
    let err = start_error(Application::build(&config).await);
    assert!(err.contains("signer.pkcs11.key_label"), "{err}");
    assert!(err.contains("tlog keygen --pkcs11"), "{err}");
}

#[tokio::test]
async fn a_missing_module_stops_start_up_naming_module() {
    let _hsm = hsm_lock().await;
    let (mut config, _) = log_on_new_token().await;
    config.signer.pkcs11.module = Some("/nonexistent/libpkcs11.so".into());
    let err = start_error(Application::build(&config).await);
    assert!(err.contains("signer.pkcs11.module"), "{err}");
    // A file that is not a PKCS#11 library is refused too.
    config.signer.pkcs11.module = Some(softhsm().pin_file.clone());
    let err = start_error(Application::build(&config).await);
    assert!(err.contains("signer.pkcs11.module"), "{err}");
}

/// Creates until one is answered 201 or `patience` passes; returns the
/// statuses seen.
async fn create_until_201(
    app: &crate::helpers::TestApp,
    key: &ClientKey,
    tag: &str,
    patience: Duration,
) -> Vec<u16> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut statuses = Vec::new();
    for attempt in 0.. {
        let artifact = format!("{tag} {attempt}");
        let status = app
            .create(&key.hashedrekord(artifact.as_bytes()))
            .await
            .status();
        statuses.push(status.as_u16());
        if status == 201 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    statuses
}

#[tokio::test]
async fn while_the_token_is_gone_creates_get_503_reads_work_and_signing_resumes() {
    let _hsm = hsm_lock().await;
    let (config, _) = log_on_new_token().await;
    let app = spawn_with(config).await;
    let key = ClientKey::new();
    let first = app.create(&key.hashedrekord(b"before the outage")).await;
    assert_eq!(first.status(), 201);
    let (_, committed) = only_entry(&first.json::<Value>().await.unwrap());

    // The HSM becomes unreachable: its token directory disappears and the
    // library loses its state (C_Finalize, as when a network HSM's client
    // library drops its sessions on a broken link; SoftHSM2 keeps a session's
    // key copy in memory, so a vanished directory alone does not stop it).
    // Until the directory is back, initialising the library again fails.
    let hsm = softhsm();
    let away = hsm.tokens.with_file_name("tokens-away");
    std::fs::rename(&hsm.tokens, &away).unwrap();
    let library = Pkcs11::new(&hsm.module).unwrap();
    library.finalize().unwrap();
    let refused = app.create(&key.hashedrekord(b"during the outage")).await;
    let status = refused.status();
    let retry_after = refused.headers().get("retry-after").cloned();
    let body: Value = refused.json().await.unwrap();
    let ready = app.get("/readyz").await.status();
    // Put it back before asserting, so other tests keep their tokens.
    std::fs::rename(&away, &hsm.tokens).unwrap();
    assert_eq!(ready, 503, "not ready while the key cannot sign");
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(body["code"], 503, "{body}");
    assert!(body["message"].is_string(), "{body}");
    // Nothing unsigned was acknowledged or committed.
    assert_eq!(app.log.checkpoint().size, 1);

    // Reads of committed entries are served meanwhile (and after).
    let read = app.get("/api/v1/log/entries?logIndex=0").await;
    assert_eq!(read.status(), 200);
    let (id, entry) = only_entry(&read.json::<Value>().await.unwrap());
    assert_eq!(entry["body"], committed["body"]);
    verify_entry(&app, &id, &entry);

    // The token is back: signing resumes without a restart.
    let statuses = create_until_201(&app, &key, "after the outage", Duration::from_secs(15)).await;
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    let size = app.log.checkpoint().size;
    assert_eq!(size, 2, "only the entry created after the outage was added");
    assert_eq!(app.get("/readyz").await.status(), 200);
    let read = app.get("/api/v1/log/entries?logIndex=1").await;
    let (id, entry) = only_entry(&read.json::<Value>().await.unwrap());
    verify_entry(&app, &id, &entry);
    app.stop().await;
}
