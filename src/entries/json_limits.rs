//! A linear, allocation-free pre-scan that bounds the shape of attacker JSON
//! before it is parsed into a [`serde_json::Value`].
//!
//! A `Value` costs far more than its text: `[0,0,…]` spends two bytes per
//! element on the wire and 32 in memory (plus the vector's slack), so a
//! body at the request limit would become hundreds of megabytes. Counting
//! the values first bounds that amplification by a constant, whatever the
//! body size. The scan reads each byte once and keeps only counters, so it
//! is cheap next to the parse it guards; it does not validate the JSON
//! (serde does that right after), it only over-counts on malformed input.

/// Deepest nesting of arrays and objects accepted. A proposed entry is at
/// most 6 levels deep (`spec.content.envelope.signatures[].sig`), and the
/// in-toto statements clients sign (SLSA provenance, SPDX, CycloneDX,
/// vulnerability reports) stay well under 20; 64 leaves room for unusual
/// predicates and stays under serde_json's own recursion limit of 128.
pub const MAX_JSON_DEPTH: usize = 64;

/// Most values (strings, numbers, literals, arrays, objects; object keys
/// count as values) accepted in one document. A proposed entry has about
/// 20; a SLSA provenance with 10,000 materials has about 40,000. 100,000
/// bounds a parsed document to roughly 10 MB, whatever the body size.
pub const MAX_JSON_VALUES: usize = 100_000;

/// Why a document was refused before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonLimitError {
    /// Arrays and objects nested deeper than [`MAX_JSON_DEPTH`].
    #[error("JSON nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_JSON_VALUES`] values.
    #[error("JSON document holds more than {MAX_JSON_VALUES} values")]
    TooManyValues,
}

/// Checks `text` against [`MAX_JSON_DEPTH`] and [`MAX_JSON_VALUES`] in one
/// pass.
///
/// # Errors
/// The first limit the text breaks.
pub fn check(text: &[u8]) -> Result<(), JsonLimitError> {
    check_with(text, MAX_JSON_DEPTH, MAX_JSON_VALUES)
}

/// [`check`] with explicit limits.
fn check_with(text: &[u8], max_depth: usize, max_values: usize) -> Result<(), JsonLimitError> {
    let mut depth = 0usize;
    let mut values = 0usize;
    // Inside a string, just after a backslash in one, inside a bare literal.
    let (mut in_string, mut escaped, mut in_literal) = (false, false, false);
    let count = |values: &mut usize| {
        *values += 1;
        if *values > max_values {
            Err(JsonLimitError::TooManyValues)
        } else {
            Ok(())
        }
    };
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => {
                count(&mut values)?;
                in_string = true;
                in_literal = false;
            }
            b'[' | b'{' => {
                count(&mut values)?;
                depth += 1;
                if depth > max_depth {
                    return Err(JsonLimitError::TooDeep);
                }
                in_literal = false;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                in_literal = false;
            }
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => in_literal = false,
            _ => {
                if !in_literal {
                    count(&mut values)?;
                    in_literal = true;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass() {
        for text in [
            &b""[..],
            b"{}",
            br#"{"kind":"hashedrekord","apiVersion":"0.0.1","spec":{"data":{"hash":{"algorithm":"sha256","value":"ab"}}}}"#,
            br#"["a\"]\\",[[1.5e3,-2,true,null]]]"#,
        ] {
            assert_eq!(check(text), Ok(()), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn values_are_counted_once_each() {
        // 3 keys, 3 values, 1 object, 1 array: 8.
        let text = br#"{"a":1,"b":[true],"c":"x]}"}"#;
        assert_eq!(check_with(text, 8, 8), Ok(()));
        assert_eq!(check_with(text, 8, 7), Err(JsonLimitError::TooManyValues));
        // Brackets and commas inside strings are not structure.
        assert_eq!(check_with(br#""[[[[,,,""#, 0, 1), Ok(()));
    }

    #[test]
    fn depth_is_measured_across_arrays_and_objects() {
        let text = br#"[{"a":[{}]}]"#;
        assert_eq!(check_with(text, 4, 100), Ok(()));
        assert_eq!(check_with(text, 3, 100), Err(JsonLimitError::TooDeep));
        let deep = "[".repeat(MAX_JSON_DEPTH + 1);
        assert_eq!(check(deep.as_bytes()), Err(JsonLimitError::TooDeep));
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(check(ok.as_bytes()), Ok(()));
    }

    #[test]
    fn a_flat_array_over_the_limit_is_refused_wherever_it_is() {
        let zeros = |n: usize| format!("[{}0]", "0,".repeat(n - 1));
        // The array itself is one value, so n elements make n + 1.
        assert_eq!(check(zeros(MAX_JSON_VALUES - 1).as_bytes()), Ok(()));
        assert_eq!(
            check(zeros(MAX_JSON_VALUES).as_bytes()),
            Err(JsonLimitError::TooManyValues)
        );
        // A large body is refused as soon as the count passes the limit:
        // the scan is linear and stops early.
        let big = zeros(16 << 20);
        assert_eq!(check(big.as_bytes()), Err(JsonLimitError::TooManyValues));
    }

    #[test]
    fn messages_name_the_limits() {
        assert_eq!(
            JsonLimitError::TooDeep.to_string(),
            "JSON nested deeper than 64 levels"
        );
        assert_eq!(
            JsonLimitError::TooManyValues.to_string(),
            "JSON document holds more than 100000 values"
        );
    }
}
