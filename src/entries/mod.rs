//! Rekor entry kinds: parse a proposed entry, verify its signature, and produce
//! the canonical body (the Merkle leaf) and the search-index keys it writes.
//! Spec: rekor-v1.md T-01..T-06, C-07, C-08, E-04.
//!
//! Pure: no I/O. One file per kind; kinds form a closed enum matched
//! exhaustively (no registry). `pki` reads keys and certificates for all kinds.
//!
//! This file handles the top level of a `ProposedEntry` (`kind`, `apiVersion`,
//! `spec`, with go-openapi's 422 messages, E-04 step 1), dispatches on the kind
//! and version, and turns the kind's body into JCS bytes (C-07).

mod armor;
pub mod committed;
mod decoding;
mod digest_signature;
mod dsse;
mod envelope;
mod hashedrekord;
pub mod hashedrekord_v2;
mod intoto;
pub mod json_limits;
pub(crate) mod minisign;
pub(crate) mod pgp;
pub mod pki;
mod rekord;
mod signers;
pub(crate) mod ssh;
#[cfg(test)]
pub(crate) mod test_support;

pub use committed::{committed_index_keys, CommittedKeys, Unstored};
pub use pki::{normalize_hash_search_key, public_key_search_key, HASH_SEARCH_PATTERN};
pub use signers::Signer;

use serde::Serialize;
use serde_json::{Map, Value};

/// The entry kinds this log accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `hashedrekord` 0.0.1 (T-02).
    HashedRekord,
    /// `dsse` 0.0.1 (T-03).
    Dsse,
    /// `intoto` 0.0.2 and 0.0.1 (T-04, T-05).
    Intoto,
    /// `rekord` 0.0.1 (T-06): x509, ssh and minisign signatures over an artifact.
    Rekord,
}

impl Kind {
    /// Every kind, for exhaustive iteration.
    pub const ALL: [Self; 4] = [Self::HashedRekord, Self::Dsse, Self::Intoto, Self::Rekord];

    /// The wire name of the kind (`"hashedrekord"`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::HashedRekord => "hashedrekord",
            Self::Dsse => "dsse",
            Self::Intoto => "intoto",
            Self::Rekord => "rekord",
        }
    }

    /// The kind named `name`, if we know it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A validated entry, ready to be appended.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// The JCS-canonical body: the Merkle leaf data (C-08).
    pub canonical: Vec<u8>,
    /// Search-index keys, lowercased (T-02 "Index keys").
    pub index_keys: Vec<String>,
    /// The keys that verified its signatures, as the body records them (for
    /// the write policy).
    pub signers: Vec<Signer>,
}

/// Why a proposed entry was refused. The API maps each to Rekor's status and body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    /// Not JSON at all (400; an allowed deviation from Rekor's 500).
    #[error("{0}")]
    Malformed(String),
    /// Top-level schema failure (HTTP 422, `code` a go-openapi 6xx value).
    #[error("{message}")]
    Schema {
        /// go-openapi error code (601 type, 602 required, 605 pattern, ...).
        code: u16,
        /// Client message.
        message: String,
    },
    /// `kind` is not one we know (HTTP 422, `code` 422).
    #[error("invalid kind value: {0:?}")]
    UnknownKind(String),
    /// The kind is known but the entry is invalid (HTTP 400, "error processing entry: ...").
    #[error("{0}")]
    Invalid(String),
}

/// Parses and fully validates a `POST /api/v1/log/entries` body, for any
/// kind.
///
/// # Errors
/// See [`EntryError`].
pub fn parse_proposed(body: &[u8]) -> Result<Entry, EntryError> {
    parse_for_insert(body, |_| true)
}

/// Parses and fully validates a `POST /api/v1/log/entries` body; a valid
/// entry of a kind for which `enabled` is false is refused as Rekor's
/// `--enabled_entry_types` does (after validation, before `Insertable`).
///
/// # Errors
/// See [`EntryError`]; a disabled kind is [`EntryError::Invalid`] `entry kind
/// '<kind>' is not enabled for submission on this server`.
pub fn parse_for_insert(body: &[u8], enabled: impl Fn(Kind) -> bool) -> Result<Entry, EntryError> {
    parse(body, Purpose::Insert(&enabled))
}

/// Parses and validates a proposed entry of `POST /api/v1/log/entries/retrieve`
/// (E-07): signatures are verified as on insertion, but forms that cannot be
/// written (the committed `dsse` form, `intoto` without an envelope) are
/// canonicalised too, and no kind is disabled. The index keys of such forms
/// are empty.
///
/// # Errors
/// See [`EntryError`].
pub fn parse_search(body: &[u8]) -> Result<Entry, EntryError> {
    parse(body, Purpose::Search)
}

/// What a proposed entry is parsed for.
#[derive(Clone, Copy)]
enum Purpose<'a> {
    /// Appending, with the kinds that may be written.
    Insert(&'a dyn Fn(Kind) -> bool),
    /// Looking up its canonical body.
    Search,
}

fn parse(body: &[u8], purpose: Purpose<'_>) -> Result<Entry, EntryError> {
    #[cfg(test)]
    committed::take_statement_keys();
    let value = parse_json(body)?;
    let proposed = ProposedEntry::from_value(&value)?;
    let (kind, version, spec) = (proposed.kind, proposed.api_version, proposed.spec);
    let validated = match kind {
        Kind::HashedRekord => match version {
            hashedrekord::API_VERSION => {
                let entry = hashedrekord::validate(spec)?;
                Validated {
                    body: serde_json::to_value(&entry.body)
                        .map_err(|_| EntryError::Invalid(CANONICAL_FAILURE.to_owned()))?,
                    index_keys: entry.index_keys,
                    not_insertable: None,
                }
            }
            other => return Err(unknown_version(kind, other)),
        },
        Kind::Dsse => match version {
            dsse::API_VERSION => dsse::validate(spec)?,
            other => return Err(unknown_version(kind, other)),
        },
        Kind::Intoto => match intoto::Version::parse(version) {
            Some(v) => intoto::validate(v, spec)?,
            None => return Err(unknown_version(kind, version)),
        },
        Kind::Rekord => match version {
            rekord::API_VERSION => rekord::validate(spec)?,
            other => return Err(unknown_version(kind, other)),
        },
    };
    if let Purpose::Insert(enabled) = purpose {
        if !enabled(kind) {
            return Err(EntryError::Invalid(format!(
                "entry kind '{}' is not enabled for submission on this server",
                kind.name()
            )));
        }
        if let Some(why) = validated.not_insertable {
            return Err(EntryError::Invalid(format!(
                "entry not insertable into log: {why}"
            )));
        }
        for key in &validated.index_keys {
            check_index_key(key).map_err(|why| {
                EntryError::Invalid(format!("entry not insertable into log: {why}"))
            })?;
        }
    }
    let canonical = canonicalize(&validated.body)?;
    #[cfg(test)]
    if matches!(purpose, Purpose::Insert(_)) {
        committed::assert_agrees(&canonical, &validated.index_keys);
    }
    Ok(Entry {
        kind,
        canonical,
        index_keys: validated.index_keys,
        signers: signers::signers(kind, &validated.body),
    })
}

/// The signers a committed `body` records, read without re-verifying its
/// signatures (the log verified them at insertion): what a monitor matches
/// against its watch list. A body that is not an entry of a known kind
/// yields none.
#[must_use]
pub fn committed_signers(body: &[u8]) -> Vec<Signer> {
    let Ok(value) = parse_json(body) else {
        return Vec::new();
    };
    match value["kind"].as_str().and_then(Kind::from_name) {
        Some(kind) => signers::signers(kind, &value),
        None => Vec::new(),
    }
}

/// Longest search-index key accepted, in bytes: Rekor's limit on a
/// certificate subject. Longer keys come only from hostile entries (a real
/// SAN, e-mail, digest or key hash is far shorter), and a key over about
/// 2.7 KB would break Postgres' btree row limit.
pub const MAX_INDEX_KEY_LEN: usize = 512;

/// Checks one search-index key: at most [`MAX_INDEX_KEY_LEN`] bytes and no
/// control character (a NUL cannot be stored in Postgres `text`, and no
/// real identity or digest holds one). Every key of a written entry passes;
/// journals and imports are held to the same rule.
///
/// # Errors
/// What is wrong with the key, with an escaped prefix of it.
pub fn check_index_key(key: &str) -> Result<(), String> {
    let preview = || {
        let head: String = key.chars().take(32).collect();
        let more = if head.len() < key.len() { "..." } else { "" };
        format!("{}{more}", head.escape_debug())
    };
    if key.len() > MAX_INDEX_KEY_LEN {
        return Err(format!(
            "search index key \"{}\" is {} bytes long, more than the {MAX_INDEX_KEY_LEN} allowed",
            preview(),
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!(
            "search index key \"{}\" contains the control character U+{:04X}",
            preview(),
            u32::from(c)
        ));
    }
    Ok(())
}

/// A kind's verified entry: its body before JCS and its index keys.
#[derive(Debug)]
struct Validated {
    body: Value,
    index_keys: Vec<String>,
    /// Why the entry can be searched for but not written (Rekor's
    /// `Insertable`), checked after the kind is found enabled.
    not_insertable: Option<&'static str>,
}

/// Rekor's message when a body cannot be canonicalised.
const CANONICAL_FAILURE: &str = "error generating canonicalized entry";

/// The semver pattern go-openapi checks `apiVersion` against (rekor openapi.yaml).
const API_VERSION_PATTERN: &str = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$";

/// The three top-level fields, checked in go-openapi's order.
struct ProposedEntry<'a> {
    kind: Kind,
    api_version: &'a str,
    spec: &'a Value,
}

impl<'a> ProposedEntry<'a> {
    fn from_value(value: &'a Value) -> Result<Self, EntryError> {
        let Some(object) = value.as_object() else {
            return Err(EntryError::Malformed(format!(
                "failed to parse proposed entry: expected a JSON object, got {}",
                json_type(value)
            )));
        };
        let kind = required_string(object, "kind")?;
        if kind.is_empty() {
            return Err(required("kind"));
        }
        let kind = Kind::from_name(kind).ok_or_else(|| EntryError::UnknownKind(kind.to_owned()))?;
        let api_version = required_string(object, "apiVersion")?;
        if !is_semver(api_version) {
            return Err(EntryError::Schema {
                code: 605,
                message: format!("apiVersion in body should match '{API_VERSION_PATTERN}'"),
            });
        }
        let spec = match object.get("spec") {
            None | Some(Value::Null) => return Err(required("spec")),
            Some(spec) => spec,
        };
        Ok(Self {
            kind,
            api_version,
            spec,
        })
    }
}

/// Parses the body as JSON; an empty body is go-openapi's 602.
fn parse_json(body: &[u8]) -> Result<Value, EntryError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(required("proposedEntry"));
    }
    json_limits::check(body)
        .map_err(|e| EntryError::Malformed(format!("failed to parse proposed entry: {e}")))?;
    match serde_json::from_slice(body) {
        Ok(Value::Null) => Err(required("proposedEntry")),
        Ok(value) => Ok(value),
        Err(e) => Err(EntryError::Malformed(format!(
            "failed to parse proposed entry: {e}"
        ))),
    }
}

fn required(name: &str) -> EntryError {
    EntryError::Schema {
        code: 602,
        message: format!("{name} in body is required"),
    }
}

/// A string field: 602 when absent or null, 601 when of another type.
fn required_string<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, EntryError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(required(name)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EntryError::Schema {
            code: 601,
            message: format!(
                "{name} in body must be of type string: {:?}",
                json_type(other)
            ),
        }),
    }
}

/// The JSON type name go-openapi uses in "must be of type" messages.
#[must_use]
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Semantic Versioning 2.0.0, as [`API_VERSION_PATTERN`] matches it.
fn is_semver(version: &str) -> bool {
    fn numeric(id: &str) -> bool {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && (id == "0" || !id.starts_with('0'))
    }
    fn alphanumeric(id: &str) -> bool {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }
    let (rest, build) = version
        .split_once('+')
        .map_or((version, None), |(r, b)| (r, Some(b)));
    let (core, pre) = rest
        .split_once('-')
        .map_or((rest, None), |(c, p)| (c, Some(p)));
    let core_ok = core.split('.').count() == 3 && core.split('.').all(numeric);
    // A pre-release identifier is a number without leading zeros, or contains a non-digit.
    let pre_ok = pre.is_none_or(|p| {
        p.split('.')
            .all(|id| alphanumeric(id) && (numeric(id) || !id.bytes().all(|b| b.is_ascii_digit())))
    });
    let build_ok = build.is_none_or(|b| b.split('.').all(alphanumeric));
    core_ok && pre_ok && build_ok
}

/// Rekor's message for a known kind without this version (E-04, X-04).
fn unknown_version(kind: Kind, version: &str) -> EntryError {
    EntryError::Invalid(format!(
        "{} implementation for version '{version}' not found: unable to locate entry for version {version}",
        kind.name()
    ))
}

/// RFC 8785 (JCS) bytes of a body: the Merkle leaf (C-07, C-08).
fn canonicalize<T: Serialize>(body: &T) -> Result<Vec<u8>, EntryError> {
    // Bodies hold only strings and objects, so this cannot fail in practice;
    // Rekor answers "error generating canonicalized entry" if it does.
    serde_json_canonicalizer::to_vec(body)
        .map_err(|_| EntryError::Invalid(CANONICAL_FAILURE.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(code: u16, message: &str) -> EntryError {
        EntryError::Schema {
            code,
            message: message.to_owned(),
        }
    }

    fn parse(body: &str) -> Result<Entry, EntryError> {
        parse_proposed(body.as_bytes())
    }

    const SPEC: &str = r#"{"data":{}}"#;

    #[test]
    fn empty_and_null_bodies_are_a_missing_proposed_entry() {
        for body in ["", "  \n", "null"] {
            assert_eq!(
                parse(body).unwrap_err(),
                schema(602, "proposedEntry in body is required"),
                "{body:?}"
            );
        }
    }

    #[test]
    fn non_json_and_non_object_bodies_are_malformed() {
        for body in [
            "{",
            "not json",
            r#"{"kind":"hashedrekord",}"#,
            "[]",
            "\"hashedrekord\"",
            "42",
        ] {
            let err = parse(body).unwrap_err();
            assert!(
                matches!(&err, EntryError::Malformed(m) if m.starts_with("failed to parse proposed entry: ")),
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn missing_top_level_fields_are_go_openapi_602s() {
        let cases = [
            (
                format!(r#"{{"apiVersion":"0.0.1","spec":{SPEC}}}"#),
                "kind in body is required",
            ),
            (
                format!(r#"{{"kind":"","apiVersion":"0.0.1","spec":{SPEC}}}"#),
                "kind in body is required",
            ),
            (
                format!(r#"{{"kind":"hashedrekord","spec":{SPEC}}}"#),
                "apiVersion in body is required",
            ),
            (
                format!(r#"{{"kind":"hashedrekord","apiVersion":null,"spec":{SPEC}}}"#),
                "apiVersion in body is required",
            ),
            (
                r#"{"kind":"hashedrekord","apiVersion":"0.0.1"}"#.to_owned(),
                "spec in body is required",
            ),
            (
                r#"{"kind":"hashedrekord","apiVersion":"0.0.1","spec":null}"#.to_owned(),
                "spec in body is required",
            ),
        ];
        for (body, msg) in cases {
            assert_eq!(parse(&body).unwrap_err(), schema(602, msg), "{body}");
        }
    }

    #[test]
    fn mistyped_top_level_fields_are_601s() {
        assert_eq!(
            parse(r#"{"kind":7,"apiVersion":"0.0.1","spec":{}}"#).unwrap_err(),
            schema(601, r#"kind in body must be of type string: "number""#)
        );
        assert_eq!(
            parse(r#"{"kind":"hashedrekord","apiVersion":[],"spec":{}}"#).unwrap_err(),
            schema(601, r#"apiVersion in body must be of type string: "array""#)
        );
    }

    #[test]
    fn unknown_kinds_are_refused_before_the_version_is_looked_at() {
        assert_eq!(
            parse(r#"{"kind":"rpm","spec":{}}"#).unwrap_err(),
            EntryError::UnknownKind("rpm".to_owned())
        );
        assert_eq!(
            EntryError::UnknownKind("x".to_owned()).to_string(),
            r#"invalid kind value: "x""#
        );
    }

    #[test]
    fn non_semver_api_versions_are_605s() {
        for version in [
            "",
            "1",
            "0.0",
            "v0.0.1",
            "00.0.1",
            "0.0.1-",
            "0.0.1-01",
            "0.0.1+",
            "0.0.1+a..b",
            "0.0.1 ",
        ] {
            let body = format!(r#"{{"kind":"hashedrekord","apiVersion":"{version}","spec":{{}}}}"#);
            assert_eq!(
                parse(&body).unwrap_err(),
                schema(
                    605,
                    &format!("apiVersion in body should match '{API_VERSION_PATTERN}'")
                ),
                "{version:?}"
            );
        }
    }

    #[test]
    fn semver_accepts_pre_releases_and_build_metadata() {
        for version in [
            "0.0.1",
            "10.20.30",
            "1.0.0-alpha.1",
            "1.0.0-0a",
            "1.0.0-x-y",
            "1.0.0+build.01",
            "1.0.0-rc.1+sha.5",
        ] {
            assert!(is_semver(version), "{version}");
        }
    }

    #[test]
    fn a_known_kind_with_an_unknown_version_is_invalid() {
        for version in ["9.9.9", "0.0.2", "0.0.1-rc.1"] {
            let body = format!(r#"{{"kind":"hashedrekord","apiVersion":"{version}","spec":{{}}}}"#);
            assert_eq!(
                parse(&body).unwrap_err(),
                EntryError::Invalid(format!(
                    "hashedrekord implementation for version '{version}' not found: unable to locate entry for version {version}"
                ))
            );
        }
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("HashedRekord"), None);
    }
}
