//! Starts a real tlog server, as tests/e2e/js/lib/server.js does: a fresh database in
//! the throwaway cluster named by DATABASE_URL, `tlog keygen`, `tlog migrate`, then
//! `tlog serve` on a free loopback port. Dropping the `Server` stops it and drops the
//! database.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct Server {
    pub base_url: String,
    child: Child,
    db: String,
    dir: PathBuf,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run the e2e tests through scripts/test.sh")
}

fn psql(sql: &str) {
    let bin = std::env::var("PG_BINDIR")
        .map(|d| PathBuf::from(d).join("psql"))
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| "psql".into());
    let out = Command::new(bin)
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-d",
            &admin_url(),
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn database_url(name: &str) -> String {
    let admin = admin_url();
    let (head, tail) = admin.split_once("://").expect("DATABASE_URL scheme");
    let (authority, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{head}://{authority}/{name}{query}")
}

impl Server {
    pub fn start() -> Server {
        let bin = std::env::var("TLOG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("target/debug/tlog"));
        assert!(
            bin.exists(),
            "tlog binary not found at {}: build it or set TLOG_BIN",
            bin.display()
        );
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            ^ (std::process::id() as u128);
        let db = format!("tlog_e2e_rs_{:x}", nonce & 0xffff_ffff_ffff);
        let dir = std::env::temp_dir().join(&db);
        std::fs::create_dir_all(&dir).unwrap();
        psql(&format!("CREATE DATABASE {db}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = dir.join("log-key.pem");
        let log = dir.join("server.log");
        let command = |args: &[&str]| {
            let mut c = Command::new(&bin);
            c.args(args);
            // The server reads every TLOG_* variable as configuration: pass only ours.
            for (k, _) in std::env::vars() {
                if k.starts_with("TLOG_") || k == "DATABASE_URL" {
                    c.env_remove(k);
                }
            }
            c.env("TLOG_LISTEN", format!("127.0.0.1:{port}"))
                .env("TLOG_METRICS_LISTEN", "127.0.0.1:0")
                .env("TLOG_DATABASE_URL", database_url(&db))
                .env("TLOG_KEY_FILE", &key)
                .env("TLOG_HOSTNAME", "localhost");
            c
        };
        for args in [
            &["keygen", "--out", key.to_str().unwrap()][..],
            &["migrate"][..],
        ] {
            let out = command(args).output().unwrap();
            assert!(
                out.status.success(),
                "tlog {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let logf = std::fs::File::create(&log).unwrap();
        let child = command(&["serve"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
        let mut server = Server {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            db,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "tlog serve exited early ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tlog serve did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.base_url = format!("http://127.0.0.1:{port}");
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM via kill(1) (no libc dependency), then wait; SIGKILL if it hangs.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let keep = repo_root().join("target/e2e-logs");
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(
            self.dir.join("server.log"),
            keep.join(format!("{}.log", self.db)),
        );
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
