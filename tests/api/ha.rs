//! Several real `tlog serve` processes on one Postgres database (issue 13):
//! one sequences, the others follow and hand their creates over; `kill -9`,
//! SIGSTOP/SIGCONT and a rolling restart of the leader lose no acknowledged
//! entry and never fork the log.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::prelude::{Engine, BASE64_STANDARD};
use parking_lot::Mutex;
use serde_json::Value;
use tlog::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use tlog::signing::{LogSigner, LogVerifier};

use crate::helpers::{create_database, hex_hashes, only_entry, ClientKey};
use crate::process::{free_port, start_server, ServerProcess};

/// Lease length the processes run with: failover within about 2.5 s.
const LEASE_TTL_MS: &str = "2000";
/// How long creates may go unanswered across a failover (issue 13).
const FAILOVER_BUDGET: Duration = Duration::from_secs(5);
/// How soon an entry acknowledged by one process is readable on another.
const READ_YOUR_WRITES: Duration = Duration::from_secs(1);

struct Node {
    server: Option<ServerProcess>,
    port: u16,
    metrics_port: u16,
}

/// The processes of one test, on one database and one key.
struct Fleet {
    database_url: String,
    key_file: std::path::PathBuf,
    verifier: LogVerifier,
    nodes: Vec<Node>,
    client: reqwest::Client,
}

impl Fleet {
    /// Starts `n` processes one after another: the first takes the lease.
    async fn start(n: usize) -> Self {
        let database_url = create_database().await;
        let key_file = std::env::temp_dir().join(format!("tlog-ha-{}.pem", uuid::Uuid::new_v4()));
        let pem = LogSigner::generate_pkcs8_pem().unwrap();
        std::fs::write(&key_file, &pem).unwrap();
        let verifier = LogSigner::from_pkcs8_pem(&pem).unwrap().verifier();
        let nodes = (0..n)
            .map(|_| Node {
                server: None,
                port: free_port(),
                metrics_port: free_port(),
            })
            .collect();
        let mut fleet = Self {
            database_url,
            key_file,
            verifier,
            nodes,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        for i in 0..n {
            fleet.start_node(i).await;
        }
        fleet
    }

    async fn start_node(&mut self, i: usize) {
        let metrics = format!("127.0.0.1:{}", self.nodes[i].metrics_port);
        let server = start_server(
            self.nodes[i].port,
            &[
                ("TLOG_DATABASE_URL", self.database_url.as_ref()),
                ("TLOG_KEY_FILE", self.key_file.as_os_str()),
                ("TLOG_HOSTNAME", "localhost".as_ref()),
                ("TLOG_LEASE_TTL_MS", LEASE_TTL_MS.as_ref()),
                ("TLOG_METRICS_LISTEN", metrics.as_ref()),
            ],
        )
        .await;
        self.nodes[i].server = Some(server);
    }

    fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://127.0.0.1:{}", n.port))
            .collect()
    }

    fn pid(&self, i: usize) -> String {
        self.nodes[i]
            .server
            .as_ref()
            .expect("node runs")
            .child
            .id()
            .to_string()
    }

    fn signal(&self, i: usize, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid(i)])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// `kill -9`, and reap it.
    fn kill(&mut self, i: usize) {
        let mut server = self.nodes[i].server.take().expect("node runs");
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }

    /// SIGTERM, and wait for the process to drain and exit.
    async fn terminate(&mut self, i: usize) {
        self.signal(i, "-TERM");
        let mut server = self.nodes[i].server.take().expect("node runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "node {i} exits after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The node's `tlog_sequencer_leader`, if it answers.
    async fn leader_gauge(&self, i: usize) -> Option<i64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.nodes[i].metrics_port);
        let text = self
            .client
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("tlog_sequencer_leader "))
            .map(|v| v.trim().parse().unwrap())
    }

    /// Waits until exactly the nodes in `among` answer and one of them leads.
    async fn wait_for_one_leader(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut leaders = Vec::new();
            for &i in among {
                if self.leader_gauge(i).await == Some(1) {
                    leaders.push(i);
                }
            }
            if leaders.len() == 1 {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "one leader among {among:?}, got {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn tree_head(&self, i: usize) -> Option<tlog::note::Checkpoint> {
        let info: Value = self
            .client
            .get(format!("{}/api/v1/log", self.urls()[i]))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        Some(
            self.verifier
                .verify_checkpoint(info["signedTreeHead"].as_str()?)
                .expect("every served checkpoint verifies"),
        )
    }
}

/// One acknowledged create.
struct Ack {
    id: String,
    index: u64,
    leaf: Hash,
    node: usize,
    sent: Instant,
    received: Instant,
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    acks: Vec<Ack>,
    /// Every answer: (node, sent, received, status), status 0 for a request
    /// that got no HTTP answer.
    answers: Vec<(usize, Instant, Instant, u16)>,
    /// Checkpoints shown to clients, by size: every root seen at that size.
    checkpoints: BTreeMap<u64, HashSet<[u8; 32]>>,
    /// Everything that broke a rule, to report at the end.
    violations: Vec<String>,
}

/// Clients posting distinct entries to the fleet until stopped.
struct Load {
    seen: Arc<Mutex<Seen>>,
    /// Creates sent and not yet answered, by node.
    in_flight: Arc<Vec<AtomicUsize>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` clients, client `k` starting on node `k % n`. A client moves
    /// to the next node when its node does not answer at all (as a load
    /// balancer would); it retries a 503 after a pause.
    fn start(fleet: &Fleet, clients: usize) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let key = Arc::new(ClientKey::new());
        let urls = Arc::new(fleet.urls());
        let in_flight: Arc<Vec<AtomicUsize>> =
            Arc::new((0..urls.len()).map(|_| AtomicUsize::new(0)).collect());
        let workers = (0..clients)
            .map(|k| {
                let worker = Worker {
                    client: fleet.client.clone(),
                    urls: Arc::clone(&urls),
                    node: k % urls.len(),
                    seen: Arc::clone(&seen),
                    in_flight: Arc::clone(&in_flight),
                    verifier: fleet.verifier.clone(),
                };
                let (stop, next, key) = (Arc::clone(&stop), Arc::clone(&next), Arc::clone(&key));
                tokio::spawn(async move {
                    worker.run(&stop, &next, &key).await;
                })
            })
            .collect();
        Self {
            seen,
            in_flight,
            stop,
            workers,
        }
    }

    /// Waits (up to 10 s) until a create sent to `node` is awaiting its answer.
    async fn until_in_flight_at(&self, node: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.in_flight[node].load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no create in flight at node {node}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.unwrap();
        }
        Arc::try_unwrap(self.seen)
            .ok()
            .expect("workers are done")
            .into_inner()
    }

    fn acks_since(&self, since: Instant) -> usize {
        self.seen
            .lock()
            .acks
            .iter()
            .filter(|a| a.sent > since)
            .count()
    }
}

struct Worker {
    client: reqwest::Client,
    urls: Arc<Vec<String>>,
    node: usize,
    seen: Arc<Mutex<Seen>>,
    in_flight: Arc<Vec<AtomicUsize>>,
    verifier: LogVerifier,
}

impl Worker {
    async fn run(mut self, stop: &AtomicBool, next: &AtomicUsize, key: &ClientKey) {
        let mut reads = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let proposal = key.hashedrekord(format!("ha-{i}").as_bytes());
            // Until this proposal is answered with 201 or 409 (or we stop).
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let url = format!("{}/api/v1/log/entries", self.urls[self.node]);
                let node = self.node;
                self.in_flight[node].fetch_add(1, Ordering::SeqCst);
                let sent_request = self.client.post(url).json(&proposal).send().await;
                self.in_flight[node].fetch_sub(1, Ordering::SeqCst);
                let Ok(response) = sent_request else {
                    // Not answering (killed, restarting): try the next one.
                    let failed = (self.node, sent, Instant::now(), 0);
                    self.seen.lock().answers.push(failed);
                    self.node = (self.node + 1) % self.urls.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let status = response.status().as_u16();
                let received = Instant::now();
                let retry_after = response.headers().contains_key("retry-after");
                let answer = (self.node, sent, received, status);
                self.seen.lock().answers.push(answer);
                match status {
                    201 => {
                        let Ok(body) = response.json::<Value>().await else {
                            continue;
                        };
                        let ack = self.acknowledged(&body, sent, received);
                        reads += 1;
                        if reads % 10 == 0 {
                            self.read_elsewhere(&ack).await;
                        }
                        self.seen.lock().acks.push(ack);
                        break;
                    }
                    // Committed by an attempt that was answered 503.
                    409 => break,
                    503 => {
                        if !retry_after {
                            self.seen
                                .lock()
                                .violations
                                .push("503 without Retry-After".into());
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => {
                        let text = response.text().await.unwrap_or_default();
                        self.seen.lock().violations.push(format!("{other}: {text}"));
                        break;
                    }
                }
            }
        }
    }

    fn acknowledged(&self, body: &Value, sent: Instant, received: Instant) -> Ack {
        let (id, entry) = only_entry(body);
        let leaf = leaf_hash(
            &BASE64_STANDARD
                .decode(entry["body"].as_str().unwrap())
                .unwrap(),
        );
        let checkpoint = self
            .verifier
            .verify_checkpoint(
                entry["verification"]["inclusionProof"]["checkpoint"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        self.seen
            .lock()
            .checkpoints
            .entry(checkpoint.size)
            .or_default()
            .insert(checkpoint.root.0);
        Ack {
            id,
            index: entry["logIndex"].as_u64().unwrap(),
            leaf,
            node: self.node,
            sent,
            received,
        }
    }

    /// Read-your-writes: the entry is readable on another process within
    /// [`READ_YOUR_WRITES`] of its 201.
    async fn read_elsewhere(&self, ack: &Ack) {
        let other = (self.node + 1) % self.urls.len();
        let url = format!("{}/api/v1/log/entries/{}", self.urls[other], ack.id);
        loop {
            let read = self.client.get(&url).timeout(READ_YOUR_WRITES);
            match read.send().await {
                Ok(r) if r.status() == 200 => return,
                Ok(_) => {}
                Err(_) => return, // that process is down: nothing to read from
            }
            if ack.received.elapsed() > READ_YOUR_WRITES {
                self.seen.lock().violations.push(format!(
                    "entry {} from node {} not readable on node {other} within 1 s",
                    ack.id, ack.node
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Checks what the clients saw against the final tree on `survivors`: no
/// rule broken, no fork, every acknowledged entry there with a verifying
/// inclusion proof, every checkpoint seen consistent with the final one.
async fn check_against_final_tree(fleet: &Fleet, survivors: &[usize], seen: &Seen) {
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert!(seen.acks.len() > 50, "the load ran: {}", seen.acks.len());
    // The survivors converge on one tree head.
    let deadline = Instant::now() + Duration::from_secs(5);
    let last = loop {
        let mut heads = Vec::new();
        for &i in survivors {
            heads.push(fleet.tree_head(i).await.expect("survivor answers"));
        }
        if heads.windows(2).all(|w| w[0] == w[1]) {
            break heads.pop().unwrap();
        }
        assert!(Instant::now() < deadline, "survivors converge: {heads:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let url = &fleet.urls()[survivors[0]];
    for (&size, roots) in &seen.checkpoints {
        assert_eq!(roots.len(), 1, "two checkpoints of size {size}: a fork");
        let root = Hash(*roots.iter().next().unwrap());
        let proof: Value = fleet
            .client
            .get(format!(
                "{url}/api/v1/log/proof?firstSize={size}&lastSize={}",
                last.size
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        verify_consistency(
            size,
            root,
            last.size,
            last.root,
            &hex_hashes(&proof["hashes"]),
        )
        .unwrap_or_else(|e| panic!("checkpoint {size} is consistent with the final tree: {e:?}"));
    }
    let mut indexes = HashSet::new();
    for ack in &seen.acks {
        assert!(
            indexes.insert(ack.index),
            "index {} acknowledged twice",
            ack.index
        );
        let response = fleet
            .client
            .get(format!("{url}/api/v1/log/entries/{}", ack.id))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged entry {} is kept",
            ack.id
        );
        let body: Value = response.json().await.unwrap();
        let (_, entry) = only_entry(&body);
        assert_eq!(entry["logIndex"].as_u64(), Some(ack.index));
        let proof = &entry["verification"]["inclusionProof"];
        let checkpoint = fleet
            .verifier
            .verify_checkpoint(proof["checkpoint"].as_str().unwrap())
            .unwrap();
        verify_inclusion(
            ack.leaf,
            ack.index,
            checkpoint.size,
            &hex_hashes(&proof["hashes"]),
            checkpoint.root,
        )
        .unwrap();
    }
}

/// `n` processes, 64 clients spread over them, `kill -9` of the leader.
async fn kill_9_of_the_leader_among(n: usize) {
    let mut fleet = Fleet::start(n).await;
    let everyone: Vec<usize> = (0..n).collect();
    let leader = fleet.wait_for_one_leader(&everyone).await;
    let load = Load::start(&fleet, 64);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = Instant::now();
    fleet.kill(leader);
    let survivors: Vec<usize> = everyone.iter().copied().filter(|&i| i != leader).collect();
    // Creates resume through the survivors.
    while load.acks_since(killed) == 0 {
        assert!(
            killed.elapsed() < FAILOVER_BUDGET,
            "creates resumed within {FAILOVER_BUDGET:?} of the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.wait_for_one_leader(&survivors).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let seen = load.finish().await;
    assert!(
        seen.acks.iter().any(|a| a.received < killed),
        "entries were acknowledged before the kill"
    );
    check_against_final_tree(&fleet, &survivors, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_survive_kill_9_of_the_leader_without_losing_an_acknowledged_entry() {
    kill_9_of_the_leader_among(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_survive_kill_9_of_the_leader_without_losing_an_acknowledged_entry() {
    kill_9_of_the_leader_among(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_neither_forks_nor_answers_201() {
    let fleet = Fleet::start(2).await;
    let old = fleet.wait_for_one_leader(&[0, 1]).await;
    let other = 1 - old;
    let load = Load::start(&fleet, 16);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Stop it while it holds requests (on a loaded machine the clients may
    // all be elsewhere at that instant, and the test would show nothing).
    load.until_in_flight_at(old).await;
    let stopped = Instant::now();
    fleet.signal(old, "-STOP");
    // The other process takes the lease over and sequences.
    let new = fleet.wait_for_one_leader(&[other]).await;
    assert_eq!(new, other);
    let took_over = Instant::now();
    while load.acks_since(took_over) == 0 {
        assert!(
            took_over.elapsed() < FAILOVER_BUDGET,
            "the new leader sequences"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = Instant::now();
    fleet.signal(old, "-CONT");
    // The old leader finds out and follows.
    fleet.wait_for_one_leader(&[0, 1]).await;
    assert_eq!(fleet.leader_gauge(old).await, Some(0));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let seen = load.finish().await;
    // What the old leader answered after SIGCONT to the requests it held
    // when it was paused (longer than its lease). A batch it committed
    // while its lease held may be answered late, if the pause fell between
    // the COMMIT and the write of the answers: those 201s are true, and
    // their indexes lie below everything the new leader sequenced. Any
    // other 201 from it would be for an entry it sequenced after losing
    // its lease. (Requests that reached it during the pause it may hand
    // over as a follower once it knows it lost the lease; those 201s are
    // honest too, and are not counted here.)
    let first_of_new_leader = seen
        .acks
        .iter()
        .filter(|a| a.node == other && a.received > took_over)
        .map(|a| a.index)
        .min()
        .expect("the new leader acknowledged entries");
    let late: Vec<&Ack> = seen
        .acks
        .iter()
        .filter(|a| a.node == old && a.sent < stopped && a.received > resumed)
        .filter(|a| a.index >= first_of_new_leader)
        .collect();
    let held = seen
        .answers
        .iter()
        .filter(|(node, sent, received, _)| *node == old && *sent < stopped && *received > resumed)
        .count();
    assert!(held > 0, "the paused leader held requests");
    assert!(
        late.is_empty(),
        "the paused leader answered 201 for entries sequenced after it lost its lease \
         (the new leader's first index is {first_of_new_leader}): {:?}",
        late.iter()
            .map(|a| (a.index, a.received.duration_since(stopped)))
            .collect::<Vec<_>>()
    );
    check_against_final_tree(&fleet, &[0, 1], &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_sees_only_brief_503s_and_loses_nothing() {
    let mut fleet = Fleet::start(2).await;
    let load = Load::start(&fleet, 32);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for i in 0..2 {
        fleet.terminate(i).await;
        fleet.start_node(i).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    fleet.wait_for_one_leader(&[0, 1]).await;
    let seen = load.finish().await;
    // Between two 201s, at most FAILOVER_BUDGET of only 503s.
    let mut answers: Vec<(Instant, u16)> = seen.answers.iter().map(|a| (a.2, a.3)).collect();
    answers.sort_by_key(|(at, _)| *at);
    let mut last_created = answers.first().map(|(at, _)| *at).unwrap();
    for (at, status) in answers {
        if status == 201 {
            last_created = at;
        } else if status == 503 {
            assert!(
                at.duration_since(last_created) <= FAILOVER_BUDGET,
                "creates failed for more than {FAILOVER_BUDGET:?} in a row"
            );
        }
    }
    check_against_final_tree(&fleet, &[0, 1], &seen).await;
}
