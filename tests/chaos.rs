//! The chaos test (issue "Failover and recovery", item 7): 8 clients write
//! through lockstep to a 3-node chain while the master, the synchronous
//! slave, a tail node and lockstep itself are SIGKILLed in turn and started
//! again a moment later. At the end every write a client got an OK for is on
//! every node, and the nodes are identical.
//!
//! CI runs it for `LOCKSTEP_CHAOS_SECS` (default 20 s, at least 10 kills);
//! `LOCKSTEP_CHAOS_SECS=60` is the long run.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::mariadb::MariaDb;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use support::{checksums, root_rows, runtime, Cluster, Lockstep};

const WRITERS: u64 = 8;
const PAUSE: Duration = Duration::from_millis(15);
const CONFIG: &str = "health_interval_ms = 200\nhealth_timeout_ms = 500\n\
    [compare]\nretry_initial_ms = 50\nretry_max_ms = 500\n";

/// What one writer saw.
#[derive(Default)]
struct Written {
    acknowledged: Vec<u64>,
    longest_outage: Duration,
}

/// Writes unique ids until `stop`: mostly autocommit inserts, every fifth
/// time a two-row transaction. Only what got an OK (the COMMIT's, for a
/// transaction) counts as acknowledged.
async fn writer(opts: OptsBuilder, base: u64, stop: Arc<AtomicBool>) -> Written {
    let mut written = Written::default();
    let mut conn: Option<Conn> = None;
    let mut last_ok = Instant::now();
    let mut next = base;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = Conn::new(opts.clone()).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        next += 2;
        let ids = if next.is_multiple_of(10) {
            vec![next, next + 1]
        } else {
            vec![next]
        };
        let done = if ids.len() == 1 {
            c.query_drop(format!("INSERT INTO chaos.t VALUES ({next}, {base})"))
                .await
        } else {
            transaction(c, &ids, base).await
        };
        match done {
            Ok(()) => {
                written.acknowledged.extend(ids);
                written.longest_outage = written.longest_outage.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            Err(_) => conn = None,
        }
        // A steady load a tail can follow (one applier per node), so that
        // the synchronous role is mostly held and its holder gets killed too.
        tokio::time::sleep(PAUSE).await;
    }
    written
}

/// BEGIN, one INSERT per id, COMMIT: each its own round trip, as most
/// applications send them.
async fn transaction(c: &mut Conn, ids: &[u64], writer: u64) -> mysql_async::Result<()> {
    c.query_drop("BEGIN").await?;
    for id in ids {
        c.query_drop(format!("INSERT INTO chaos.t VALUES ({id}, {writer})"))
            .await?;
    }
    c.query_drop("COMMIT").await
}

fn node_index(name: &str) -> usize {
    name.trim_start_matches('n').parse().expect("node name")
}

/// The node to kill for `victim`: the master, the synchronous slave, or a
/// node with neither role; when none holds the role asked for (no
/// synchronous slave yet), another node that is not the master.
fn pick(lockstep: &Lockstep, victim: &str) -> Option<(usize, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let roles = support::roles(lockstep);
        let other = |(_, role): &&(String, String)| role != "master" && role != "sync";
        let found = match victim {
            "tail" => roles.iter().find(other),
            role => roles
                .iter()
                .find(|(_, r)| r == role)
                .or_else(|| (role == "sync").then(|| roles.iter().find(other)).flatten()),
        };
        if let Some((node, role)) = found {
            return Some((node_index(node), role.clone()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn restart(cluster: &mut Cluster, i: usize) {
    let (dir, port) = (cluster.nodes[i].dir.clone(), cluster.nodes[i].port);
    cluster.nodes[i] = MariaDb::start(&dir, port, &Default::default()).expect("node restarts");
}

#[test]
fn no_acknowledged_write_is_lost_while_servers_and_lockstep_are_killed() {
    let seconds: u64 = std::env::var("LOCKSTEP_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut cluster = Cluster::start(3);
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, CONFIG, Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE chaos; \
         CREATE TABLE chaos.t (id BIGINT PRIMARY KEY, writer BIGINT) ENGINE=InnoDB;",
    );
    let rt = runtime();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            rt.spawn(writer(
                lockstep.client_opts(),
                w * 100_000_000,
                stop.clone(),
            ))
        })
        .collect();

    // Kill in turn, each victim started again before the next kill.
    let victims = ["master", "sync", "tail", "lockstep"];
    let started = Instant::now();
    let mut kills = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) || kills.len() < 10 {
        std::thread::sleep(Duration::from_millis(
            700 + (kills.len() as u64 * 389) % 900,
        ));
        let victim = victims[kills.len() % victims.len()];
        if victim == "lockstep" {
            lockstep.kill();
            std::thread::sleep(Duration::from_millis(500));
            lockstep.respawn();
            kills.push(victim.to_string());
            continue;
        }
        let Some((i, role)) = pick(&lockstep, victim) else {
            panic!("lockstep does not answer SHOW LOCKSTEP NODES");
        };
        cluster.nodes[i].kill();
        std::thread::sleep(Duration::from_millis(1000));
        restart(&mut cluster, i);
        kills.push(format!("n{i} ({role})"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    let mut longest = Duration::ZERO;
    for w in writers {
        let written = rt.block_on(w).expect("writer");
        acknowledged.extend(written.acknowledged);
        longest = longest.max(written.longest_outage);
    }
    println!(
        "{} acknowledged writes in {:?}; {} kills: {kills:?}; longest write outage a client saw: {} ms",
        acknowledged.len(),
        started.elapsed(),
        kills.len(),
        longest.as_millis()
    );

    // Every node catches up with the master.
    let (master, _) = pick(&lockstep, "master").expect("a master");
    let last = |i: usize| support::commits_of(&cluster.nodes[i]);
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..cluster.nodes.len() {
        while last(i) != last(master) {
            assert!(
                Instant::now() < deadline,
                "n{i} did not catch up: {:?}",
                support::roles(&lockstep)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for node in &cluster.nodes {
        let present: HashSet<u64> = root_rows(node, "SELECT id FROM chaos.t")
            .iter()
            .map(|r| r.parse().expect("id"))
            .collect();
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|id| !present.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "port {} lost {} writes: {lost:?}",
            node.port,
            lost.len()
        );
    }
    let sums: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| checksums(n, &["chaos.t", "lockstep.commits"]))
        .collect();
    assert!(
        sums.windows(2).all(|w| w[0] == w[1]),
        "nodes differ: {sums:?}"
    );
}
