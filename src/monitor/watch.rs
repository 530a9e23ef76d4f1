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
