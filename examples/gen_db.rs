//! Writes a signed `db.jsonl` of N synthetic hashedrekord entries directly,
//! without a server, for replica and export benchmarks:
//!
//! ```text
//! cargo run --release --example gen_db -- --count 1000000 --key log-key.pem --out db.jsonl
//! ```
//!
//! Every entry is a real hashedrekord body (ECDSA P-256 over SHA-256 of a
//! distinct artifact, from one of 64 client keys) with its index keys, and
//! every SET and the final checkpoint are signed with `--key`.

use std::io::{BufWriter, Write};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use sha2::{Digest, Sha256};
use tlog::export::SnapshotWriter;
use tlog::signing::LogSigner;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut count, mut key, mut out) = (100_000u64, String::new(), String::new());
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value");
        match arg.as_str() {
            "--count" => count = value().parse()?,
            "--key" => key = value(),
            "--out" => out = value(),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let signer = LogSigner::from_pkcs8_pem(&std::fs::read_to_string(&key)?)?;
    let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let mut writer = SnapshotWriter::new(file, signer, "localhost", 1_234_567_890)?;
    let clients: Vec<EcdsaKeyPair> = (0..64)
        .map(|_| EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
        .collect();
    let rng = SystemRandom::new();
    let started = std::time::Instant::now();
    for i in 0..count {
        let client = &clients[(i % 64) as usize];
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            client.public_key(),
        )?;
        let pem = pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", der.as_ref()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        let artifact = format!("artifact {i}");
        let digest = hex::encode(Sha256::digest(artifact.as_bytes()));
        let sig = client.sign(&rng, artifact.as_bytes())?;
        let proposal = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest}},
                "signature": {
                    "content": BASE64_STANDARD.encode(sig.as_ref()),
                    "publicKey": {"content": BASE64_STANDARD.encode(&pem)}
                }
            }
        });
        // The log's own parser gives the canonical body and index keys.
        let entry = tlog::entries::parse_proposed(&serde_json::to_vec(&proposal)?)?;
        writer.push(
            entry.canonical,
            1_700_000_000 + (i / 1000) as i64,
            &entry.index_keys,
        )?;
        if i % 100_000 == 99_999 {
            eprintln!(
                "{} entries, {:.0}/s",
                i + 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let (mut file, checkpoint) = writer.finish()?;
    file.flush()?;
    eprintln!(
        "wrote {out}: {} entries, root {}",
        checkpoint.size,
        hex::encode(checkpoint.root.0)
    );
    Ok(())
}
