//! The one way tlog builds an outgoing HTTP client: for the log a monitor
//! follows, `tlog verify URL`, witnesses and the monitor's webhook.
//!
//! Every client is bounded (the caller sets timeouts), follows no redirects,
//! and speaks `http://` and `https://`. TLS is rustls on the aws-lc-rs
//! provider the log already uses for its keys. It trusts the operating
//! system's roots (on Debian and in the container image, the
//! `ca-certificates` bundle) plus, optionally, the certificates of one PEM
//! file: the CA of a private log or witness. A certificate that does not
//! chain to those, or does not name the host, fails the request.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file cannot be read or holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS or HTTP stack refused the configuration.
    #[error("couldn't set up the HTTP client: {0}")]
    Setup(String),
}

/// The roots a client trusts: the system's, and the certificates of
/// `ca_file` if given. A system without a trust store still gets a client,
/// which then trusts `ca_file` alone (and says so in the log).
///
/// # Errors
/// `ca_file` cannot be read, is not PEM, or holds no certificate.
pub fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system trust store entry could not be read");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system CA certificates found: https:// URLs need ca_file");
    }
    if let Some(path) = ca_file {
        let bad = |reason: String| ClientError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad("it holds no CERTIFICATE block".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("a certificate is unusable as a root: {e}")))?;
        }
    }
    Ok(roots)
}

/// A client builder with tlog's TLS settings and no redirects; the caller
/// adds timeouts and a user agent.
///
/// # Errors
/// See [`roots`]; or the TLS provider refuses its defaults.
pub fn builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, ClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Setup(e.to_string()))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none()))
}

/// Whether `url` names a scheme the client speaks.
#[must_use]
pub fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Every cause of a request error, outermost first: reqwest's own message
/// is only "error sending request", the reason (an unknown issuer, a name
/// mismatch, a refused connection) is further down.
#[must_use]
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_empty_or_not_pem_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("tlog-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for (path, expect) in [
            (&missing, "No such file"),
            (&empty, "no CERTIFICATE block"),
            (&garbage, "garbage.pem"),
        ] {
            let err = roots(Some(path)).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(expect), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn http_and_https_urls_are_spoken_nothing_else() {
        assert!(is_http_url("http://log.example"));
        assert!(is_http_url("https://log.example"));
        assert!(!is_http_url("ftp://log.example"));
        assert!(!is_http_url("log.example"));
    }
}
