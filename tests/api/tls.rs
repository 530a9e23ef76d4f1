//! tlog's outgoing HTTPS (src/http_client.rs): `tlog verify URL`, `tlog
//! monitor` and witnesses reach a log or witness behind TLS, trusting the
//! system's roots plus `--ca-file` / `monitor.ca_file` /
//! `v2.witness_ca_file`, and refuse a certificate that does not chain to
//! them or does not name the host.
//!
//! The server side is what a deployment has in front of tlog: a
//! TLS-terminating proxy (here a few lines of tokio-rustls, as an ingress
//! would be) with a certificate from a private CA made for the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::conformance::tempdir;

/// A private CA, written to `ca.pem`, that issues server certificates.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) pem_file: PathBuf,
}

impl TestCa {
    pub(crate) fn new(dir: &Path) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tlog test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem_file = dir.join("ca.pem");
        std::fs::write(&pem_file, cert.pem()).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem_file,
        }
    }

    /// A TLS server configuration whose certificate names `names` (DNS
    /// names or IP addresses).
    fn server(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .unwrap();
        Arc::new(config)
    }

    /// Starts a TLS-terminating proxy to `upstream` (`http://host:port`)
    /// whose certificate names `names`; returns its port.
    pub(crate) async fn front(&self, upstream: &str, names: &[&str]) -> u16 {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server(names));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        port
    }
}

/// `tlog ARGS`, run off the test's runtime (the servers it reads run in
/// this process): exit code and stdout + stderr.
async fn tlog(args: Vec<String>) -> (i32, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tlog"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().expect("tlog exits"), text)
}

fn verify_args(url: &str, public_key: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "verify".to_owned(),
        url.to_owned(),
        "--public-key".to_owned(),
        public_key.display().to_string(),
        "--json".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_an_https_log_that_chains_to_the_ca_file_and_names_the_host() {
    use crate::monitor::{bodies, Setup};
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(40, "over tls")).await;
    let dir = tempdir();
    let ca = TestCa::new(&dir);
    let port = ca.front(&app.address, &["localhost"]).await;
    let url = format!("https://localhost:{port}");
    let ca_file = ca.pem_file.display().to_string();

    let (code, out) = tlog(verify_args(
        &url,
        &setup.public_key,
        &["--ca-file", &ca_file],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"], 40, "{out}");
    assert_eq!(report["sets_verified"], 40, "{out}");

    // The system's roots do not know the private CA.
    let (code, out) = tlog(verify_args(&url, &setup.public_key, &[])).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("UnknownIssuer"), "{out}");

    // The certificate names localhost, not the address.
    let by_ip = format!("https://127.0.0.1:{port}");
    let (code, out) = tlog(verify_args(
        &by_ip,
        &setup.public_key,
        &["--ca-file", &ca_file],
    ))
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not valid for name"), "{out}");

    // A CA file that is not one stops the run, naming it.
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let (code, out) = tlog(verify_args(
        &url,
        &setup.public_key,
        &["--ca-file", not_pem.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not-a-ca.pem") && out.contains("no CERTIFICATE"),
        "{out}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_follows_an_https_log_with_its_ca_file() {
    use crate::monitor::{bodies, Setup};
    let setup = Setup::new();
    let app = setup.serve("log", &bodies(12, "monitored over tls")).await;
    let dir = tempdir();
    let ca = TestCa::new(&dir);
    let port = ca.front(&app.address, &["localhost"]).await;
    let url = format!("https://localhost:{port}");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let args = |ca_file: Option<&Path>| {
        let mut args = vec![
            "monitor".to_owned(),
            url.clone(),
            "--once".to_owned(),
            "--public-key".to_owned(),
            setup.public_key.display().to_string(),
            "--state-dir".to_owned(),
            state.display().to_string(),
            "--start-index".to_owned(),
            "0".to_owned(),
        ];
        if let Some(ca_file) = ca_file {
            args.extend(["--ca-file".to_owned(), ca_file.display().to_string()]);
        }
        args
    };

    // Without the CA the log cannot be read: exit 2, nothing stored.
    let (code, out) = tlog(args(None)).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("UnknownIssuer"), "{out}");
    assert!(std::fs::read_dir(&state).unwrap().next().is_none());

    let (code, out) = tlog(args(Some(&ca.pem_file))).await;
    assert_eq!(code, 0, "{out}");
    let stored = std::fs::read_dir(&state).unwrap().count();
    assert!(stored > 0, "the verified checkpoint is stored: {out}");
    app.stop().await;
}
