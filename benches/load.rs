//! Load generator for `tlog serve` (a bench binary, not a timed test).
//!
//! ```text
//! cargo bench --bench load -- --url http://127.0.0.1:3000 create --count 300000 --concurrency 64
//! cargo bench --bench load -- --url http://127.0.0.1:3000 create --count 150000 --rate 2500
//! cargo bench --bench load -- --url http://127.0.0.1:3000 get --seconds 30 --concurrency 64
//! cargo bench --bench load -- --url http://127.0.0.1:3000 --api v2 create --count 100000
//! cargo bench --bench load -- --url http://127.0.0.1:3000 tiles --seconds 30 --concurrency 64
//! ```
//!
//! `--api v2` sends Rekor v2 hashedrekord 0.0.2 requests to
//! `/api/v2/log/entries`; `tiles` fetches random full level-0 tiles and
//! entry bundles of the v2 log (`/tile/0/<N>`, `/tile/entries/<N>`).
//!
//! `create` pre-signs `--count` distinct hashedrekord requests (ECDSA P-256
//! over SHA-256, as cosign sends them), then posts them from `--concurrency`
//! clients, optionally paced to `--rate` per second. `get` fetches random
//! entries by index (each answer carries an inclusion proof). Both report
//! requests/s, p50/p99/max latency and the CPU used by tlog (`--tlog-pid`, or
//! found by name) and by all `postgres` processes, as cores busy on average.
//! Latency under `--rate` is measured from each request's scheduled start, so
//! a stalled server cannot hide queueing delay (no coordinated omission).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::prelude::{Engine, BASE64_STANDARD};
use sha2::{Digest, Sha256};

struct Args {
    url: String,
    mode: String,
    count: usize,
    concurrency: usize,
    rate: Option<f64>,
    seconds: u64,
    tlog_pid: Option<u32>,
    /// `v1` (default) or `v2`: which create API.
    api: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: "http://127.0.0.1:3000".into(),
        mode: String::new(),
        count: 10_000,
        concurrency: 64,
        rate: None,
        seconds: 30,
        tlog_pid: None,
        api: "v1".into(),
    };
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value(),
            "--count" => args.count = value().parse().expect("--count"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency"),
            "--rate" => args.rate = Some(value().parse().expect("--rate")),
            "--seconds" => args.seconds = value().parse().expect("--seconds"),
            "--tlog-pid" => args.tlog_pid = Some(value().parse().expect("--tlog-pid")),
            "--api" => args.api = value(),
            "create" | "get" | "tiles" => args.mode = arg.clone(),
            other => panic!("unknown argument {other}; see the doc comment in benches/load.rs"),
        }
    }
    assert!(!args.mode.is_empty(), "say `create` or `get`");
    args
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        match args.mode.as_str() {
            "create" => run_create(&args).await,
            "tiles" => run_tiles(&args).await,
            _ => run_get(&args).await,
        }
    });
}

/// Pre-signs `count` distinct Rekor v2 hashedrekord 0.0.2 requests.
fn presign_v2(count: usize) -> Vec<bytes::Bytes> {
    let keys: Vec<(EcdsaKeyPair, String)> = (0..8)
        .map(|_| {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
            let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
                pair.public_key(),
            )
            .unwrap();
            (pair, BASE64_STANDARD.encode(der.as_ref()))
        })
        .collect();
    let rng = SystemRandom::new();
    let nonce: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (0..count)
        .map(|i| {
            let artifact = format!("tlog load artifact {nonce} {i}");
            let (pair, spki_b64) = &keys[i % keys.len()];
            let sig = pair.sign(&rng, artifact.as_bytes()).unwrap();
            let body = serde_json::json!({"hashedRekordRequestV002": {
                "digest": BASE64_STANDARD.encode(Sha256::digest(artifact.as_bytes())),
                "signature": {"content": BASE64_STANDARD.encode(sig.as_ref()), "verifier": {
                    "publicKey": {"rawBytes": spki_b64}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}});
            bytes::Bytes::from(serde_json::to_vec(&body).unwrap())
        })
        .collect()
}

/// Pre-signs `count` distinct hashedrekord bodies with a handful of keys.
fn presign(count: usize) -> Vec<bytes::Bytes> {
    let keys: Vec<(EcdsaKeyPair, String)> = (0..8)
        .map(|_| {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
            let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
                pair.public_key(),
            )
            .unwrap();
            let pem = pem::encode_config(
                &pem::Pem::new("PUBLIC KEY", der.as_ref()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            (pair, BASE64_STANDARD.encode(pem))
        })
        .collect();
    let rng = SystemRandom::new();
    let nonce: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (0..count)
        .map(|i| {
            let artifact = format!("tlog load artifact {nonce} {i}");
            let (pair, key_b64) = &keys[i % keys.len()];
            let sig = pair.sign(&rng, artifact.as_bytes()).unwrap();
            let body = serde_json::json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(artifact.as_bytes()))}},
                    "signature": {"content": BASE64_STANDARD.encode(sig.as_ref()), "publicKey": {"content": key_b64}}
                }
            });
            bytes::Bytes::from(serde_json::to_vec(&body).unwrap())
        })
        .collect()
}

async fn run_create(args: &Args) {
    eprintln!("pre-signing {} requests…", args.count);
    let bodies = Arc::new(if args.api == "v2" {
        presign_v2(args.count)
    } else {
        presign(args.count)
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let url = format!("{}/api/{}/log/entries", args.url, args.api);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let cpu = CpuSample::take(args.tlog_pid);
    let start = Instant::now();
    let rate = args.rate;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (bodies, client, url, next, failures) = (
                Arc::clone(&bodies),
                client.clone(),
                url.clone(),
                Arc::clone(&next),
                Arc::clone(&failures),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let scheduled = match rate {
                        Some(rate) => {
                            let at = start + Duration::from_secs_f64(i as f64 / rate);
                            tokio::time::sleep_until(at.into()).await;
                            at
                        }
                        None => Instant::now(),
                    };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 201 => {
                            let _ = r.bytes().await;
                            latencies.push(scheduled.elapsed());
                        }
                        Ok(r) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!(
                                    "status {}: {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                );
                            }
                        }
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("request failed: {e}");
                            }
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    report(
        "creates",
        start.elapsed(),
        latencies,
        failures.load(Ordering::Relaxed),
        &cpu,
    );
}

async fn run_get(args: &Args) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let info: serde_json::Value = client
        .get(format!("{}/api/v1/log", args.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let size = info["treeSize"].as_u64().unwrap();
    assert!(size > 0, "the log is empty; run `create` first");
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let failures = Arc::new(AtomicU64::new(0));
    let cpu = CpuSample::take(args.tlog_pid);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            let (client, base, failures) =
                (client.clone(), args.url.clone(), Arc::clone(&failures));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (task as u64);
                while Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let url = format!("{base}/api/v1/log/entries?logIndex={}", x % size);
                    let sent = Instant::now();
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed());
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    report(
        "GETs",
        start.elapsed(),
        latencies,
        failures.load(Ordering::Relaxed),
        &cpu,
    );
}

/// The C2SP `<N>` path of tile index `n` (`x001/x234/067`).
fn tile_index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

async fn run_tiles(args: &Args) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let checkpoint = client
        .get(format!("{}/checkpoint", args.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let size: u64 = checkpoint
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a v2 checkpoint");
    let full = size / 256;
    assert!(
        full > 0,
        "the v2 log has no full tile; run `--api v2 create` first"
    );
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let failures = Arc::new(AtomicU64::new(0));
    let cpu = CpuSample::take(args.tlog_pid);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            let (client, base, failures) =
                (client.clone(), args.url.clone(), Arc::clone(&failures));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (task as u64);
                while Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Three tiles for each entry bundle, as a monitor reads them.
                    let kind = if x % 4 == 0 { "entries" } else { "0" };
                    let url = format!("{base}/tile/{kind}/{}", tile_index_path((x >> 2) % full));
                    let sent = Instant::now();
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed());
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    report(
        "tile GETs",
        start.elapsed(),
        latencies,
        failures.load(Ordering::Relaxed),
        &cpu,
    );
}

fn report(
    what: &str,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
    failures: u64,
    cpu: &CpuSample,
) {
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let secs = elapsed.as_secs_f64();
    println!(
        "{what}: {} ok, {failures} failed in {secs:.1} s = {:.0}/s; latency ms p50 {:.1} p99 {:.1} max {:.1}",
        latencies.len(),
        latencies.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    let (tlog, postgres) = cpu.cores_since(secs);
    println!("cpu (cores busy on average): tlog {tlog:.2}, postgres {postgres:.2}");
}

/// CPU ticks of tlog and of every postgres process at one moment.
struct CpuSample {
    tlog_pid: Option<u32>,
    tlog: u64,
    postgres: u64,
}

impl CpuSample {
    fn take(tlog_pid: Option<u32>) -> Self {
        let tlog_pid = tlog_pid.or_else(|| find_pid("tlog"));
        if tlog_pid.is_none() {
            eprintln!("no tlog process found; pass --tlog-pid for the CPU split");
        }
        Self {
            tlog_pid,
            tlog: tlog_pid.map_or(0, ticks),
            postgres: all_named("postgres").into_iter().map(ticks).sum(),
        }
    }

    fn cores_since(&self, secs: f64) -> (f64, f64) {
        let now = Self::take(self.tlog_pid);
        let hz = 100.0; // USER_HZ on Linux
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz / secs;
        (
            cores(self.tlog, now.tlog),
            cores(self.postgres, now.postgres),
        )
    }
}

fn stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// utime + stime of `pid` (fields 14 and 15 of /proc/PID/stat), in ticks.
fn ticks(pid: u32) -> u64 {
    let Some(stat) = stat(pid) else { return 0 };
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_owned())
}

fn all_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&pid| comm(pid).as_deref() == Some(name))
                .collect()
        })
        .unwrap_or_default()
}

fn find_pid(name: &str) -> Option<u32> {
    all_named(name).into_iter().next()
}
