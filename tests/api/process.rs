//! `tlog serve` as a real child process, for tests that kill or signal it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `tlog serve`; killed and reaped on drop, on every path.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `tlog serve` on `port` with only `env` (plus quick batches and a
/// free metrics port) and waits until `/readyz` answers 200.
// The child is reaped in `Drop for ServerProcess`.
#[allow(clippy::zombie_processes)]
pub async fn start_server(port: u16, env: &[(&str, &std::ffi::OsStr)]) -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tlog"));
    command
        .arg("serve")
        .env_clear()
        .env("TLOG_LISTEN", format!("127.0.0.1:{port}"))
        .env("TLOG_METRICS_LISTEN", "127.0.0.1:0")
        .env("TLOG_BATCH__INTERVAL_MS", "5")
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("tlog binary starts");
    let server = ServerProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ready = client.get(format!("{}/readyz", server.url)).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tlog serve did not become ready on {}", server.url);
}
