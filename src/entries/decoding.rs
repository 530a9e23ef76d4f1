//! How Rekor's Go code reads wire values, for the kinds that share it:
//! `encoding/base64` (standard and URL alphabets), the Go type names in
//! `DecodeEntry` messages, `encoding/json`'s case-insensitive field match,
//! and go-openapi's `validation failure list`.
//!
//! Spec: rekor-v1.md T-02..T-05 (the `failed parsing base64 data for …` and
//! schema messages every kind reports).

use base64::engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::EntryError;

/// Go's `base64.StdEncoding`: padded, CR and LF ignored, non-zero trailing
/// bits tolerated.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Go's `base64.URLEncoding` (padded), as DSSE's flexible decoder uses it.
const GO_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Go's `base64.StdEncoding.DecodeString`; the error is Go's
/// `illegal base64 data at input byte N`.
pub(super) fn std_base64(text: &str) -> Result<Vec<u8>, String> {
    go_decode(&GO_STD, text)
}

/// DSSE's `b64Decode`: standard alphabet first, then the URL alphabet.
pub(super) fn flexible_base64(text: &str) -> Option<Vec<u8>> {
    go_decode(&GO_STD, text)
        .or_else(|_| go_decode(&GO_URL, text))
        .ok()
}

fn go_decode(engine: &GeneralPurpose, text: &str) -> Result<Vec<u8>, String> {
    let result = if text.contains(['\r', '\n']) {
        engine.decode(text.replace(['\r', '\n'], ""))
    } else {
        engine.decode(text)
    };
    result.map_err(|e| {
        use base64::DecodeError::{InvalidByte, InvalidLastSymbol, InvalidLength, InvalidPadding};
        let at = match e {
            InvalidByte(at, _) | InvalidLastSymbol(at, _) => at,
            InvalidLength(len) => len,
            InvalidPadding => text.find('=').unwrap_or(text.len()),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// Go's `base64.NewDecoder(base64.StdEncoding, …)` read to the end: the
/// bytes of every quantum before the first bad one, and the error there
/// (`unexpected EOF` for a quantum cut short, as the streaming reader says).
pub(super) fn go_stream_base64(text: &[u8]) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (n, quantum) in text.chunks(4).enumerate() {
        let start = n * 4;
        let illegal = |at: usize| Some(format!("illegal base64 data at input byte {}", start + at));
        if let Some(at) = quantum
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='))
        {
            return (out, illegal(at));
        }
        if quantum.len() < 4 && !quantum.contains(&b'=') {
            return (out, Some("unexpected EOF".to_owned()));
        }
        match GO_STD.decode(quantum) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(_) => {
                return (
                    out,
                    illegal(quantum.iter().position(|&b| b == b'=').unwrap_or(0)),
                )
            }
        }
        // Nothing may follow padding.
        if quantum.contains(&b'=') && start + 4 < text.len() {
            return (out, illegal(4));
        }
    }
    (out, None)
}

/// Standard padded base64, as Go marshals `strfmt.Base64` and `[]byte`.
pub(super) fn to_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The Go type `encoding/json` gives a JSON value, for `DecodeEntry` messages.
pub(super) fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The `spec` object, or Rekor's `DecodeEntry` refusal.
pub(super) fn spec_object(spec: &Value) -> Result<&Map<String, Value>, EntryError> {
    spec.as_object().ok_or_else(|| {
        EntryError::Invalid(format!(
            "unsupported input type {} for DecodeEntry",
            go_type(spec)
        ))
    })
}

/// `map[key].(map[string]any)` in Go: the object, if it is one.
pub(super) fn object<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}

/// `map[key].(string)` in Go: the string, if it is one.
pub(super) fn string<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// The field `encoding/json` would decode into a struct field tagged `name`:
/// an exact key first, else a case-insensitive one.
pub(super) fn go_field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// go-openapi's `CompositeValidationError`: every schema violation, in the
/// order the generated `Validate` finds them.
#[derive(Default)]
pub(super) struct Violations(Vec<String>);

impl Violations {
    /// `<name> in body is required`.
    pub(super) fn required(&mut self, name: &str) {
        self.0.push(format!("{name} in body is required"));
    }

    /// `<name> in body should be one of [<values>]`.
    pub(super) fn not_in_enum(&mut self, name: &str, values: &[&str]) {
        self.0.push(format!(
            "{name} in body should be one of [{}]",
            values.join(" ")
        ));
    }

    /// `<name> in body should have at least <n> items`.
    pub(super) fn too_few(&mut self, name: &str, min: usize) {
        self.0
            .push(format!("{name} in body should have at least {min} items"));
    }

    /// `<name> in body should match '<pattern>'`.
    pub(super) fn mismatch(&mut self, name: &str, pattern: &str) {
        self.0
            .push(format!("{name} in body should match '{pattern}'"));
    }

    /// Checks a `{algorithm, value}` digest object whose algorithm must be sha256.
    pub(super) fn sha256_digest(&mut self, name: &str, digest: &Digest<'_>) {
        match digest.algorithm {
            None => self.required(&format!("{name}.algorithm")),
            Some(a) if a != "sha256" => self.not_in_enum(&format!("{name}.algorithm"), &["sha256"]),
            Some(_) => {}
        }
        if digest.value.is_none() {
            self.required(&format!("{name}.value"));
        }
    }

    /// `Ok` when nothing was found, else the composite error.
    pub(super) fn finish(self) -> Result<(), EntryError> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(EntryError::Invalid(format!(
            "validation failure list:\n{}",
            self.0.join("\n")
        )))
    }
}

/// A `{algorithm, value}` object as `DecodeEntry` reads it: each field only
/// if it is a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Digest<'a> {
    pub(super) algorithm: Option<&'a str>,
    pub(super) value: Option<&'a str>,
}

impl<'a> Digest<'a> {
    /// The digest object at `map[key]`, if it is an object.
    pub(super) fn read(map: &'a Map<String, Value>, key: &str) -> Option<Self> {
        object(map, key).map(|o| Self {
            algorithm: string(o, "algorithm"),
            value: string(o, "value"),
        })
    }

    /// The JSON object, with absent fields left out.
    pub(super) fn to_json(self) -> Value {
        let mut out = Map::new();
        if let Some(a) = self.algorithm {
            out.insert("algorithm".into(), Value::String(a.into()));
        }
        if let Some(v) = self.value {
            out.insert("value".into(), Value::String(v.into()));
        }
        Value::Object(out)
    }
}

/// A server-computed SHA-256 digest object.
pub(super) fn sha256_json(digest: &[u8]) -> Value {
    serde_json::json!({"algorithm": "sha256", "value": hex::encode(digest)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flexible_base64_takes_both_alphabets() {
        assert_eq!(flexible_base64("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(flexible_base64("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(flexible_base64("+_8="), None);
        assert_eq!(flexible_base64("YQ"), None);
    }

    #[test]
    fn std_base64_reports_the_offset() {
        assert_eq!(
            std_base64("YW*j").unwrap_err(),
            "illegal base64 data at input byte 2"
        );
        assert_eq!(std_base64("YW\r\nJj").unwrap(), b"abc");
    }

    #[test]
    fn go_field_falls_back_to_a_case_insensitive_key() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"PayloadType":"a","payload":"b"}"#).unwrap();
        assert_eq!(go_field(&map, "payloadType"), Some(&Value::from("a")));
        assert_eq!(go_field(&map, "payload"), Some(&Value::from("b")));
        assert_eq!(go_field(&map, "signatures"), None);
    }

    #[test]
    fn violations_compose_as_go_openapi_does() {
        let mut v = Violations::default();
        assert!(Violations::default().finish().is_ok());
        v.required("a.b");
        v.not_in_enum("c", &["sha256"]);
        assert_eq!(
            v.finish().unwrap_err(),
            EntryError::Invalid(
                "validation failure list:\na.b in body is required\nc in body should be one of [sha256]"
                    .into()
            )
        );
    }
}
