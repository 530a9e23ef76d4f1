//! Hostile-input benchmark for `tlog serve` (issue 12; a bench binary, not a timed test).
//!
//! ```text
//! cargo bench --bench hostile -- --url http://127.0.0.1:3000 worst
//! cargo bench --bench hostile -- --url http://127.0.0.1:3000 flood --seconds 20
//! ```
//!
//! `worst` sends each worst-case request once, sized up to `--max-body`
//! (default 32 MiB, the server's default limit), and prints its status, the
//! time to the answer, and how far the server's peak RSS rose above its RSS
//! before the first attack (`VmHWM`, from `/proc`; pass `--tlog-pid` when
//! more than one `tlog` runs). A request that gets no answer within
//! `--timeout` seconds (default 20) is reported as such. Before each request
//! it waits `--pause` seconds (default 1.5): the server admits large bodies
//! within a budget of bytes a second shared by all clients
//! (`validation.large_bytes_per_second`, one second's worth at most), so
//! sent back to back the fourth 32 MiB body would measure that budget's 503
//! instead of the answer to the request itself.
//!
//! `attack` runs only the attackers and the `/ping` sampler, so that the
//! honest load can come from another process (`benches/load.rs create`).
//!
//! `flood` measures what the attacks cost honest users: 64 clients post
//! distinct hashedrekord entries for `--seconds`, while `/ping` is sampled
//! every 10 ms, first alone and then beside 8 connections that send the
//! attack requests in a loop. It prints the honest create rate of both
//! phases and their ratio, `/ping` p50/p99/max, and every status the honest
//! and hostile requests got (a 503 for an honest create is a failure of the
//! "no entry may make another one fail" rule unless it carries
//! `Retry-After` from a full pool).
//!
//! The attacks (issue 12's list): `dsse` and `intoto` 0.0.2 envelopes with N
//! self-made keys and N signatures (N²/2 verifications without a cap), a
//! `rekord` ssh signature of repeated `-----BEGIN ` (a quadratic PEM scan),
//! a pgp signature nested 5,000 deep through embedded-signature subpackets, a
//! JSON body of `[0,0,…]` for create and for retrieve (amplification into
//! `serde_json::Value`), `dsse` entries whose in-toto subject digest is a NUL
//! or 3 KB long (index keys Postgres cannot store), and a body trickled one
//! byte every 100 ms.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

struct Args {
    url: String,
    mode: String,
    max_body: usize,
    seconds: u64,
    timeout: u64,
    /// Seconds `worst` waits before each request.
    pause: f64,
    tlog_pid: Option<u32>,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: "http://127.0.0.1:3000".into(),
        mode: String::new(),
        max_body: 32 << 20,
        seconds: 20,
        timeout: 20,
        pause: 1.5,
        tlog_pid: None,
    };
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value(),
            "--max-body" => args.max_body = value().parse().expect("--max-body"),
            "--seconds" => args.seconds = value().parse().expect("--seconds"),
            "--timeout" => args.timeout = value().parse().expect("--timeout"),
            "--pause" => args.pause = value().parse().expect("--pause"),
            "--tlog-pid" => args.tlog_pid = Some(value().parse().expect("--tlog-pid")),
            "worst" | "flood" | "attack" => args.mode = arg.clone(),
            other => panic!("unknown argument {other}; see the doc comment in benches/hostile.rs"),
        }
    }
    assert!(!args.mode.is_empty(), "say `worst`, `flood` or `attack`");
    args
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    eprintln!(
        "building the attack requests (up to {} bytes)…",
        args.max_body
    );
    let attacks = Arc::new(build_attacks(args.max_body));
    runtime.block_on(async move {
        match args.mode.as_str() {
            "worst" => run_worst(&args, &attacks).await,
            "attack" => run_attack(&args, attacks).await,
            _ => run_flood(&args, attacks).await,
        }
    });
}

/// One hostile request: where it goes and its body.
struct Attack {
    name: &'static str,
    path: &'static str,
    body: bytes::Bytes,
}

fn build_attacks(max_body: usize) -> Vec<Attack> {
    let entries = "/api/v1/log/entries";
    let mut attacks = vec![
        Attack {
            name: "dsse N keys x N signatures",
            path: entries,
            body: dsse_many(max_body),
        },
        Attack {
            name: "intoto 0.0.2 N keys x N signatures",
            path: entries,
            body: intoto_many(max_body),
        },
        Attack {
            name: "rekord ssh, repeated -----BEGIN",
            path: entries,
            body: rekord_ssh_begins(max_body),
        },
        Attack {
            name: "dsse, NUL subject digest",
            path: entries,
            body: dsse_subject("\u{0}"),
        },
        Attack {
            name: "dsse, 3 KB subject digest",
            path: entries,
            // Incompressible, so that Postgres cannot shrink it under its
            // btree row limit.
            body: dsse_subject(
                &(0..47u8)
                    .map(|i| hex::encode(Sha256::digest([i])))
                    .collect::<String>(),
            ),
        },
        Attack {
            name: "create, [0,0,...]",
            path: entries,
            body: zeros(max_body),
        },
        Attack {
            name: "retrieve, [0,0,...] logIndexes",
            path: "/api/v1/log/entries/retrieve",
            body: zeros_query(max_body),
        },
    ];
    match rekord_pgp_deep(5_000) {
        Some(body) => attacks.push(Attack {
            name: "rekord pgp, 5,000-deep embedded signatures",
            path: entries,
            body,
        }),
        None => eprintln!("gpg is missing: the pgp attack is left out"),
    }
    attacks
}

fn ecdsa_key() -> (EcdsaKeyPair, String) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
        pair.public_key(),
    )
    .unwrap();
    let pem = pem::encode_config(
        &pem::Pem::new("PUBLIC KEY", der.as_ref()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    (pair, pem)
}

/// DSSE's pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

const INTOTO: &str = "application/vnd.in-toto+json";

fn statement(digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": digest}}],
        "predicateType": "https://example.com/predicate",
        "predicate": {}
    }))
    .unwrap()
}

/// N distinct keys and N valid signatures of `message`, signature i by key
/// i: a verifier that tries key i against signatures 0..=i in order makes
/// about N²/2 ECDSA verifications before every key has found its own.
fn many_signatures(n: usize, message: &[u8]) -> Vec<(String, String)> {
    let rng = SystemRandom::new();
    (0..n)
        .map(|_| {
            let (pair, pem) = ecdsa_key();
            let sig = pair.sign(&rng, message);
            (pem, BASE64_STANDARD.encode(sig.unwrap().as_ref()))
        })
        .collect()
}

fn dsse_many(max_body: usize) -> bytes::Bytes {
    // About 250 bytes of verifier and 120 of signature per pair.
    let n = (max_body / 400).max(16);
    let payload = statement(&hex::encode(Sha256::digest(b"artifact")));
    let pairs = many_signatures(n, &pae(INTOTO, &payload));
    let envelope = json!({
        "payloadType": INTOTO,
        "payload": BASE64_STANDARD.encode(&payload),
        "signatures": pairs.iter().map(|(_, sig)| json!({"sig": sig})).collect::<Vec<_>>(),
    });
    let verifiers: Vec<String> = pairs
        .iter()
        .map(|(pem, _)| BASE64_STANDARD.encode(pem))
        .collect();
    to_bytes(&json!({
        "apiVersion": "0.0.1", "kind": "dsse",
        "spec": {"proposedContent": {"envelope": envelope.to_string(), "verifiers": verifiers}}
    }))
}

fn intoto_many(max_body: usize) -> bytes::Bytes {
    let n = (max_body / 500).max(16);
    let payload = statement(&hex::encode(Sha256::digest(b"artifact")));
    let pairs = many_signatures(n, &pae(INTOTO, &payload));
    let signatures: Vec<Value> = pairs
        .iter()
        .map(|(pem, sig)| {
            json!({"sig": BASE64_STANDARD.encode(sig), "publicKey": BASE64_STANDARD.encode(pem)})
        })
        .collect();
    to_bytes(&json!({
        "apiVersion": "0.0.2", "kind": "intoto",
        "spec": {"content": {"envelope": {
            "payloadType": INTOTO,
            "payload": BASE64_STANDARD.encode(BASE64_STANDARD.encode(&payload)),
            "signatures": signatures,
        }}}
    }))
}

/// A DSSE entry honestly signed by its own key, whose statement names the
/// subject digest `digest`.
fn dsse_subject(digest: &str) -> bytes::Bytes {
    let (pair, pem) = ecdsa_key();
    let payload = statement(digest);
    let sig = pair
        .sign(&SystemRandom::new(), &pae(INTOTO, &payload))
        .unwrap();
    let envelope = json!({
        "payloadType": INTOTO,
        "payload": BASE64_STANDARD.encode(&payload),
        "signatures": [{"sig": BASE64_STANDARD.encode(sig.as_ref())}],
    });
    to_bytes(&json!({
        "apiVersion": "0.0.1", "kind": "dsse",
        "spec": {"proposedContent": {
            "envelope": envelope.to_string(),
            "verifiers": [BASE64_STANDARD.encode(pem)],
        }}
    }))
}

fn rekord_ssh_begins(max_body: usize) -> bytes::Bytes {
    // Base64 grows the text by 4/3; leave room for the rest of the body.
    let repeats = (max_body * 3 / 4 - 4096) / "-----BEGIN ".len();
    let signature = "-----BEGIN ".repeat(repeats);
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEW4GOLDPDCEzWjBdMNhsf/QqP1VmD3QGjYHt0qT1H9c bench";
    to_bytes(&json!({
        "apiVersion": "0.0.1", "kind": "rekord",
        "spec": {
            "signature": {
                "format": "ssh",
                "content": BASE64_STANDARD.encode(signature),
                "publicKey": {"content": BASE64_STANDARD.encode(key)},
            },
            "data": {"content": BASE64_STANDARD.encode(b"artifact")},
        }
    }))
}

/// A v4 RSA signature packet whose unhashed area holds an embedded-signature
/// subpacket (type 32) that holds another, `depth` levels deep. Each level
/// is only the fixed header and the subpacket (about 13 bytes), so 5,000
/// levels fit the area's 16-bit length: a parser that recurses before it
/// checks anything reaches the bottom.
fn deep_signature_packet(depth: usize) -> Vec<u8> {
    let mut body: Vec<u8> = vec![4, 0, 1, 8, 0, 0, 0, 0];
    for _ in 0..depth {
        // Subpacket length covers the type octet and the contents.
        let mut area = Vec::new();
        write_subpacket_len(&mut area, body.len() + 1);
        area.push(32);
        area.extend_from_slice(&body);
        body = vec![4, 0, 1, 8, 0, 0];
        body.extend_from_slice(
            &u16::try_from(area.len())
                .expect("fits the area")
                .to_be_bytes(),
        );
        body.extend_from_slice(&area);
    }
    // A new-format packet header, tag 2, five-octet length.
    let mut packet = vec![0xC2, 0xFF];
    packet.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    packet.extend_from_slice(&body);
    packet
}

fn write_subpacket_len(out: &mut Vec<u8>, len: usize) {
    if len < 192 {
        out.push(len as u8);
    } else if len < 16320 {
        let l = len - 192;
        out.push(((l >> 8) + 192) as u8);
        out.push((l & 0xFF) as u8);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    }
}

/// A real pgp public key made by gpg in a throwaway home, with the deep
/// signature; `None` without gpg.
fn rekord_pgp_deep(depth: usize) -> Option<bytes::Bytes> {
    let home = std::env::temp_dir().join(format!("tlog-hostile-gpg-{}", std::process::id()));
    std::fs::create_dir_all(&home).ok()?;
    let gpg = |args: &[&str]| {
        std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    gpg(&[
        "--quick-gen-key",
        "bench <bench@example.com>",
        "ed25519",
        "sign",
        "never",
    ])?;
    let key = gpg(&["--armor", "--export", "bench@example.com"])?.stdout;
    let _ = std::fs::remove_dir_all(&home);
    Some(to_bytes(&json!({
        "apiVersion": "0.0.1", "kind": "rekord",
        "spec": {
            "signature": {
                "format": "pgp",
                "content": BASE64_STANDARD.encode(deep_signature_packet(depth)),
                "publicKey": {"content": BASE64_STANDARD.encode(key)},
            },
            "data": {"content": BASE64_STANDARD.encode(b"artifact")},
        }
    })))
}

fn zeros(max_body: usize) -> bytes::Bytes {
    let n = (max_body - 2) / 2;
    let mut body = Vec::with_capacity(max_body);
    body.push(b'[');
    for i in 0..n {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'0');
    }
    body.push(b']');
    body.into()
}

fn zeros_query(max_body: usize) -> bytes::Bytes {
    let inner = zeros(max_body - 32);
    let mut body = b"{\"logIndexes\":".to_vec();
    body.extend_from_slice(&inner);
    body.push(b'}');
    body.into()
}

fn to_bytes(value: &Value) -> bytes::Bytes {
    serde_json::to_vec(value).unwrap().into()
}

async fn run_worst(args: &Args, attacks: &[Attack]) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .unwrap();
    let pid = args.tlog_pid.or_else(|| find_pid("tlog"));
    let idle = pid.and_then(|p| status_kb(p, "VmRSS"));
    println!(
        "idle RSS: {}",
        idle.map_or("unknown".into(), |kb| format!("{} MB", kb / 1024))
    );
    for attack in attacks {
        tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
        let started = Instant::now();
        let outcome = match client
            .post(format!("{}{}", args.url, attack.path))
            .header("content-type", "application/json")
            .body(attack.body.clone())
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                format!(
                    "{status} {}",
                    text.trim().chars().take(120).collect::<String>()
                )
            }
            Err(e) if e.is_timeout() => format!("no answer within {} s", args.timeout),
            Err(e) => format!("failed: {e}"),
        };
        let peak = pid.and_then(|p| status_kb(p, "VmHWM"));
        let rise = match (idle, peak) {
            (Some(idle), Some(peak)) => format!("{} MB", peak.saturating_sub(idle) / 1024),
            _ => "unknown".into(),
        };
        let alive = pid.is_some_and(|p| status_kb(p, "VmRSS").is_some());
        println!(
            "{:45} {:>9} B  {:>8.3} s  peak RSS +{rise}{}  {outcome}",
            attack.name,
            attack.body.len(),
            started.elapsed().as_secs_f64(),
            if alive || pid.is_none() {
                ""
            } else {
                "  SERVER GONE"
            },
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
    println!("trickled body: {}", trickle(&args.url, args.timeout));
}

/// Sends a create's head and then one body byte every 100 ms; reports what
/// the server answered and when.
fn trickle(url: &str, timeout: u64) -> String {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return "couldn't connect".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let started = Instant::now();
    let head = format!(
        "POST /api/v1/log/entries HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return "couldn't send the head".into();
    }
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(timeout) {
        if stream.write_all(b" ").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let first_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    if first_line.is_empty() && started.elapsed() >= Duration::from_secs(timeout) {
        return format!("still open after {timeout} s");
    }
    format!(
        "{:.1} s, {}",
        started.elapsed().as_secs_f64(),
        if first_line.is_empty() {
            "closed without an answer".into()
        } else {
            first_line
        }
    )
}

/// Statuses seen, by label.
type Statuses = Arc<Mutex<BTreeMap<String, u64>>>;

fn note(statuses: &Statuses, what: &str, status: String) {
    *statuses
        .lock()
        .unwrap()
        .entry(format!("{what} {status}"))
        .or_default() += 1;
}

async fn run_flood(args: &Args, attacks: Arc<Vec<Attack>>) {
    eprintln!("pre-signing honest requests…");
    let honest = Arc::new(presign(200_000));
    let next = Arc::new(AtomicUsize::new(0));
    let statuses: Statuses = Arc::default();
    let (quiet_rate, quiet_ping) = phase(args, &honest, &next, None, &statuses).await;
    let (loud_rate, loud_ping) = phase(args, &honest, &next, Some(&attacks), &statuses).await;
    println!(
        "honest creates/s: alone {quiet_rate:.0}, under attack {loud_rate:.0} (ratio {:.2})",
        loud_rate / quiet_rate.max(1.0)
    );
    println!("/ping ms alone:        {}", quiet_ping);
    println!("/ping ms under attack: {}", loud_ping);
    for (what, count) in statuses.lock().unwrap().iter() {
        println!("  {what}: {count}");
    }
}

/// The attackers and the `/ping` sampler alone, for `--seconds`: run the
/// honest load from another process (`benches/load.rs create`) beside it, so
/// that the two clients do not share one runtime's threads.
async fn run_attack(args: &Args, attacks: Arc<Vec<Attack>>) {
    let statuses: Statuses = Arc::default();
    let none = Arc::new(Vec::new());
    let next = Arc::new(AtomicUsize::new(0));
    eprintln!("attacking for {} s", args.seconds);
    let (_, ping) = phase(args, &none, &next, Some(&attacks), &statuses).await;
    println!("/ping ms under attack: {ping}");
    for (what, count) in statuses.lock().unwrap().iter() {
        println!("  {what}: {count}");
    }
}

/// One phase: 64 honest clients and the `/ping` sampler, with the attackers
/// when `attacks` is given. Returns honest 201s per second and ping latency.
async fn phase(
    args: &Args,
    honest: &Arc<Vec<bytes::Bytes>>,
    next: &Arc<AtomicUsize>,
    attacks: Option<&Arc<Vec<Attack>>>,
    statuses: &Statuses,
) -> (f64, String) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(80)
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let label = if attacks.is_some() {
        "attack phase:"
    } else {
        "quiet phase:"
    };
    for _ in 0..64 {
        let (client, honest, next, stop, created, statuses) = (
            client.clone(),
            Arc::clone(honest),
            Arc::clone(next),
            Arc::clone(&stop),
            Arc::clone(&created),
            Arc::clone(statuses),
        );
        let url = format!("{}/api/v1/log/entries", args.url);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Some(body) = honest.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_or_else(|e| format!("error {e}"), |r| r.status().to_string());
                if status.starts_with("201") {
                    created.fetch_add(1, Ordering::Relaxed);
                } else {
                    note(&statuses, &format!("{label} honest create"), status);
                }
            }
        }));
    }
    if let Some(attacks) = attacks {
        for i in 0..8 {
            // Each attacker has its own connection, as 8 hostile clients would.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(args.timeout))
                .build()
                .unwrap();
            let (attacks, stop, statuses, base) = (
                Arc::clone(attacks),
                Arc::clone(&stop),
                Arc::clone(statuses),
                args.url.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut k = i;
                while !stop.load(Ordering::Relaxed) {
                    let attack = &attacks[k % attacks.len()];
                    k += 1;
                    let status = client
                        .post(format!("{base}{}", attack.path))
                        .header("content-type", "application/json")
                        .body(attack.body.clone())
                        .send()
                        .await
                        .map_or_else(|e| format!("error {e}"), |r| r.status().to_string());
                    note(&statuses, &format!("{label} {}", attack.name), status);
                }
            }));
        }
    }
    let pings = {
        let (client, stop, url) = (
            client.clone(),
            Arc::clone(&stop),
            format!("{}/ping", args.url),
        );
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let ok = client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                latencies.push(if ok {
                    sent.elapsed()
                } else {
                    Duration::from_secs(999)
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        })
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let rate = created.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = pings.await.unwrap();
    for task in tasks {
        task.abort();
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    (
        rate,
        format!(
            "{} samples, p50 {:.1} p99 {:.1} max {:.1}",
            latencies.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        ),
    )
}

/// Distinct hashedrekord bodies signed by a handful of keys.
fn presign(count: usize) -> Vec<bytes::Bytes> {
    let keys: Vec<(EcdsaKeyPair, String)> = (0..8)
        .map(|_| {
            let (pair, pem) = ecdsa_key();
            (pair, BASE64_STANDARD.encode(pem))
        })
        .collect();
    let rng = SystemRandom::new();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (0..count)
        .map(|i| {
            let artifact = format!("tlog hostile bench {nonce} {i}");
            let (pair, key) = &keys[i % keys.len()];
            let sig = pair.sign(&rng, artifact.as_bytes()).unwrap();
            to_bytes(&json!({
                "apiVersion": "0.0.1", "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(artifact.as_bytes()))}},
                    "signature": {"content": BASE64_STANDARD.encode(sig.as_ref()), "publicKey": {"content": key}}
                }
            }))
        })
        .collect()
}

/// A `kB` field of /proc/PID/status.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

fn find_pid(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == name).then_some(pid)
    })
}
