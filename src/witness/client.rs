//! One `add-checkpoint` exchange with one witness (C2SP tlog-witness,
//! rekor-v2-tiles.md X-02): the request body, and the answer read with a
//! size cap.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use signed_note::Signature;

use crate::merkle::Hash;

/// Largest answer read from a witness: a few signature lines (an ML-DSA-44
/// cosignature is about 3.3 KB of base64) fit many times over.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Largest number of signature lines taken from one answer.
const MAX_LINES: usize = 16;

/// What a witness answered.
#[derive(Debug)]
pub enum Answer {
    /// 200: the signature lines it returned.
    Cosigned(Vec<Signature>),
    /// 409 with `text/x.tlog.size`: the size it last cosigned.
    Conflict(u64),
}

/// Why an exchange failed, with a fixed label for the metrics.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Connecting, sending or reading failed.
    #[error("transport: {0}")]
    Transport(String),
    /// No answer within the witness timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// Another status than 200 or 409.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body, lossily decoded.
        body: String,
    },
    /// An answer that does not follow the protocol (size, lines, 409 body).
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// No line of the witness's key verified over the checkpoint.
    #[error("no valid cosignature: {0}")]
    BadCosignature(String),
    /// The witness knows a larger tree than the checkpoint, or keeps
    /// answering 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The log could not build the consistency proof the witness needs.
    #[error("couldn't build the consistency proof: {0}")]
    Proof(String),
}

impl Failure {
    /// The `reason` label of `tlog_witness_failures_total`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Transport(_) => "transport",
            Failure::Timeout => "timeout",
            Failure::Status { .. } => "status",
            Failure::Malformed(_) => "malformed",
            Failure::BadCosignature(_) => "bad_cosignature",
            Failure::Conflict(_) => "conflict",
            Failure::Proof(_) => "proof",
        }
    }
}

/// The add-checkpoint body: `old <size>`, one base64 proof hash a line, a
/// blank line, then the signed checkpoint.
#[must_use]
pub fn request_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&BASE64_STANDARD.encode(hash.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// Posts one add-checkpoint request to `<url>/add-checkpoint` and reads at
/// most [`MAX_ANSWER_BYTES`] of the answer. The client's own timeout bounds
/// the exchange.
///
/// # Errors
/// Any [`Failure`] but `BadCosignature` and `Conflict`.
pub async fn add_checkpoint(
    http: &reqwest::Client,
    url: &str,
    body: String,
) -> Result<Answer, Failure> {
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Transport(e.to_string())
        }
    };
    let mut response = http
        .post(format!("{url}/add-checkpoint"))
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    let size_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "text/x.tlog.size");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(Failure::Malformed(format!(
            "the answer is over {MAX_ANSWER_BYTES} bytes"
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Failure::Malformed(format!(
                "the answer is over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    match status {
        200 => parse_lines(&bytes).map(Answer::Cosigned),
        409 if size_type => parse_size(&bytes).map(Answer::Conflict),
        409 => Err(Failure::Malformed(
            "409 without Content-Type text/x.tlog.size".into(),
        )),
        _ => {
            bytes.truncate(200);
            Err(Failure::Status {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })
        }
    }
}

/// A 409 body: `<size>\n`, decimal without leading zeros.
fn parse_size(body: &[u8]) -> Result<u64, Failure> {
    let bad = || Failure::Malformed("a text/x.tlog.size body is `<size>\\n`".into());
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    let digits = text.strip_suffix('\n').ok_or_else(bad)?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

/// A 200 body: one or more signature lines, each ending in `\n`.
fn parse_lines(body: &[u8]) -> Result<Vec<Signature>, Failure> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Failure::Malformed("the answer is not UTF-8".into()))?;
    let Some(text) = text.strip_suffix('\n') else {
        return Err(Failure::Malformed(
            "the answer does not end in a newline".into(),
        ));
    };
    let mut lines = Vec::new();
    for line in text.split('\n') {
        if lines.len() == MAX_LINES {
            return Err(Failure::Malformed(format!(
                "the answer has more than {MAX_LINES} lines"
            )));
        }
        let sig = Signature::from_bytes(line.as_bytes()).map_err(|e| {
            Failure::Malformed(format!(
                "not a signature line ({e}): {:?}",
                line.chars().take(60).collect::<String>()
            ))
        })?;
        lines.push(sig);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_old_size_proof_lines_a_blank_line_and_the_note() {
        let note = "o\n2\nroot\n\n\u{2014} o sig\n";
        assert_eq!(request_body(0, &[], note), format!("old 0\n\n{note}"));
        let proof = [Hash([0; 32]), Hash([0xff; 32])];
        assert_eq!(
            request_body(1, &proof, note),
            format!(
                "old 1\n{}\n{}\n\n{note}",
                BASE64_STANDARD.encode([0; 32]),
                BASE64_STANDARD.encode([0xff; 32])
            )
        );
    }

    #[test]
    fn conflict_sizes_and_signature_lines_are_parsed_strictly() {
        assert_eq!(parse_size(b"12\n").unwrap(), 12);
        assert_eq!(parse_size(b"0\n").unwrap(), 0);
        for bad in [
            &b"12"[..],
            b"012\n",
            b"\n",
            b"-1\n",
            b"1 2\n",
            b"99999999999999999999\n",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let line = "\u{2014} w.example AAAAAAAA\n";
        assert_eq!(parse_lines(line.as_bytes()).unwrap().len(), 1);
        for bad in [
            "",
            "\u{2014} w.example AAAAAAAA",
            "garbage\n",
            "\u{2014} w.example !!!!\n",
            "\u{2014} w.example AAAAAAAA\n\n",
        ] {
            assert!(parse_lines(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let many = line.repeat(MAX_LINES + 1);
        assert!(parse_lines(many.as_bytes()).is_err());
    }
}
