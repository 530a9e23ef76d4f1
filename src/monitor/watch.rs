//! The watch list: certificate identities and key fingerprints whose
//! appearance in the log is reported. Identities are read from each entry's
//! committed body with the write policy's extraction
//! ([`policy::signer_identity`]).

use regex::Regex;
use serde::Serialize;

use crate::config::WatchConfig;
use crate::entries::{self, Signer};
use crate::policy::{self, SignerIdentity};

/// A loaded watch list.
#[derive(Debug, Default)]
pub struct WatchList {
    identities: Vec<(SanRule, Option<String>)>,
    fingerprints: Vec<String>,
}

#[derive(Debug)]
enum SanRule {
    Exact(String),
    Regex(Regex),
}

/// A signer of an entry that is on the watch list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Match {
    /// What it matched: `identity` or `fingerprint`.
    pub rule: &'static str,
    /// The certificate's SANs.
    pub sans: Vec<String>,
    /// Its OIDC issuer.
    pub issuer: Option<String>,
    /// SHA-256 of its public key.
    pub key_fingerprint: String,
}

impl WatchList {
    /// The list of `config`.
    ///
    /// # Errors
    /// An identity with neither or both of `san` and `san_regex`, a regex that
    /// does not compile, or a fingerprint that is not 64 hex digits; each
    /// names its setting.
    pub fn new(config: &WatchConfig) -> Result<Self, String> {
        let mut identities = Vec::new();
        for (i, id) in config.identities.iter().enumerate() {
            let rule = match (&id.san, &id.san_regex) {
                (Some(san), None) => SanRule::Exact(san.clone()),
                (None, Some(re)) => SanRule::Regex(
                    Regex::new(&format!("^(?:{re})$"))
                        .map_err(|e| format!("monitor.watch.identities[{i}].san_regex: {e}"))?,
                ),
                _ => {
                    return Err(format!(
                        "monitor.watch.identities[{i}]: set exactly one of san and san_regex"
                    ))
                }
            };
            identities.push((rule, id.issuer.clone()));
        }
        let mut fingerprints = Vec::new();
        for (i, fp) in config.fingerprints.iter().enumerate() {
            let fp = fp.trim().to_ascii_lowercase().replace(':', "");
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "monitor.watch.fingerprints[{i}]: not a hex SHA-256 fingerprint"
                ));
            }
            fingerprints.push(fp);
        }
        Ok(Self {
            identities,
            fingerprints,
        })
    }

    /// Whether nothing is watched (entries then need not be read).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.fingerprints.is_empty()
    }

    /// The watched signers of the committed entry `body`.
    #[must_use]
    pub fn matches(&self, body: &[u8]) -> Vec<Match> {
        entries::committed_signers(body)
            .iter()
            .filter_map(|signer: &Signer| policy::signer_identity(signer))
            .filter_map(|id| self.rule_for(&id).map(|rule| (rule, id)))
            .map(|(rule, id)| Match {
                rule,
                sans: id.sans,
                issuer: id.issuer,
                key_fingerprint: id.key_fingerprint,
            })
            .collect()
    }

    fn rule_for(&self, id: &SignerIdentity) -> Option<&'static str> {
        let fingerprint = |fp: &str| self.fingerprints.iter().any(|w| w == fp);
        if fingerprint(&id.key_fingerprint)
            || id
                .certificate_fingerprint
                .as_deref()
                .is_some_and(fingerprint)
        {
            return Some("fingerprint");
        }
        let identity = self.identities.iter().any(|(san, issuer)| {
            issuer
                .as_ref()
                .is_none_or(|want| id.issuer.as_ref() == Some(want))
                && id.sans.iter().any(|s| match san {
                    SanRule::Exact(want) => want == s,
                    SanRule::Regex(re) => re.is_match(s),
                })
        });
        identity.then_some("identity")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WatchIdentityConfig;
    use crate::entries::pki::Curve;
    use crate::entries::test_support::{
        certificate, fulcio_issuer, pem, san_email, CertSpec, TestKey,
    };

    fn cert_pem(email: &str, issuer: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let ca = TestKey::ecdsa(Curve::P256);
        let key = TestKey::ecdsa(Curve::P256);
        let mut spec = CertSpec::leaf("leaf", "ca");
        spec.sans = vec![san_email(email)];
        spec.extensions = issuer
            .map(|i| fulcio_issuer(i, false))
            .into_iter()
            .collect();
        let der = certificate(&spec, &key.spki(), &ca);
        (pem("CERTIFICATE", &der), der)
    }

    fn watch(identities: Vec<WatchIdentityConfig>, fingerprints: Vec<String>) -> WatchList {
        WatchList::new(&WatchConfig {
            identities,
            fingerprints,
        })
        .unwrap()
    }

    fn identity(san: Option<&str>, re: Option<&str>, issuer: Option<&str>) -> WatchIdentityConfig {
        WatchIdentityConfig {
            san: san.map(str::to_owned),
            san_regex: re.map(str::to_owned),
            issuer: issuer.map(str::to_owned),
        }
    }

    #[test]
    fn certificates_match_by_san_and_issuer_and_keys_by_fingerprint() {
        let (bot, bot_der) = cert_pem("bot@example.com", Some("https://issuer.example"));
        let (other_issuer, _) = cert_pem("bot@example.com", Some("https://other.example"));
        let (stranger, _) = cert_pem("eve@example.com", Some("https://issuer.example"));
        let list = watch(
            vec![identity(
                Some("bot@example.com"),
                None,
                Some("https://issuer.example"),
            )],
            Vec::new(),
        );
        let rule = |pem: &[u8]| {
            policy::signer_identity(&Signer::X509(pem.to_vec())).and_then(|id| list.rule_for(&id))
        };
        assert_eq!(rule(&bot), Some("identity"));
        assert_eq!(rule(&other_issuer), None);
        assert_eq!(rule(&stranger), None);

        // A regex over the whole SAN, any issuer.
        let list = watch(
            vec![identity(None, Some(r".*@example\.com"), None)],
            Vec::new(),
        );
        let id = policy::signer_identity(&Signer::X509(stranger.clone())).unwrap();
        assert_eq!(list.rule_for(&id), Some("identity"));
        let (evil, _) = cert_pem("x@example.com.evil", None);
        let id = policy::signer_identity(&Signer::X509(evil)).unwrap();
        assert_eq!(list.rule_for(&id), None);

        // The certificate's DER fingerprint, and a bare key's SPKI one.
        let cert_fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bot_der));
        let key = TestKey::ecdsa(Curve::P256);
        let key_fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.spki()));
        let list = watch(Vec::new(), vec![cert_fp.to_uppercase(), key_fp]);
        let id = policy::signer_identity(&Signer::X509(bot)).unwrap();
        assert_eq!(list.rule_for(&id), Some("fingerprint"));
        let id = policy::signer_identity(&Signer::X509(key.public_pem())).unwrap();
        assert_eq!(list.rule_for(&id), Some("fingerprint"));
        let id = policy::signer_identity(&Signer::X509(stranger)).unwrap();
        assert_eq!(list.rule_for(&id), None);
    }

    #[test]
    fn bad_watch_entries_name_their_setting() {
        let both = WatchConfig {
            identities: vec![identity(Some("a"), Some("b"), None)],
            fingerprints: Vec::new(),
        };
        assert!(WatchList::new(&both).unwrap_err().contains("identities[0]"));
        let short = WatchConfig {
            identities: Vec::new(),
            fingerprints: vec!["abcd".to_owned()],
        };
        assert!(WatchList::new(&short)
            .unwrap_err()
            .contains("fingerprints[0]"));
    }
}
