//! `scripts/release.sh ci-selftest` against the real server: a release blob is
//! signed into the log by a client outside this crate (cosign when installed,
//! otherwise curl + openssl with `scripts/deploy-tools/rekor_v1.py`), verified
//! with the log's public key, and refused with another key.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn release_selftest_signs_into_the_log_and_verifies() {
    let app = spawn_app().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/release.sh");
    // Three rounds, so the last one checks an inclusion proof with two hashes.
    for round in 1..=3 {
        let url = app.address.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .arg("ci-selftest")
                .env("TLOG_URL", url)
                .output()
                .expect("run scripts/release.sh")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("a wrong log key is refused"), "{stdout}");
        let info: Value = app.get("/api/v1/log").await.json().await.unwrap();
        assert_eq!(info["treeSize"], round, "one entry per round");
    }
    app.stop().await;
}
