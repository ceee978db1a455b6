//! lockstep is SIGKILLed during heavy writes, many times, on one journal:
//! the journal reopens every time and holds an entry for every write a
//! client got an OK for (sled has corruption reports after abrupt stops).

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep::journal::Journal;
use mysql_async::prelude::Queryable;
use rand::Rng;
use support::{root_rows, runtime, Cluster, Lockstep};

const ROUNDS: usize = 8;
const CLIENTS: usize = 8;

/// Inserts rows keyed `r{round}-c{client}-{n}` until the connection dies;
/// every key that got an OK goes into `acked`.
async fn writer(
    opts: mysql_async::OptsBuilder,
    round: usize,
    client: usize,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let Ok(mut c) = mysql_async::Conn::new(opts).await else {
        return;
    };
    for n in 0.. {
        let key = format!("r{round}-c{client}-{n}");
        let sql = format!("INSERT INTO d.t (k) VALUES ('{key}')");
        if c.query_drop(sql).await.is_err() {
            return;
        }
        if let Ok(mut acked) = acked.lock() {
            acked.push(key);
        }
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill_in_the_journal() {
    let cluster = Cluster::start(1);
    support::root_sql(
        cluster.master(),
        "CREATE DATABASE d; CREATE TABLE d.t (id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(40) NOT NULL UNIQUE)",
    );
    let journal_dir = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    let mut all_acked = Vec::new();
    for round in 0..ROUNDS {
        let mut lockstep = Lockstep::start_with_journal(&cluster, "", Some(journal_dir.path()));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let kill_after = Duration::from_millis(rand::thread_rng().gen_range(300..1500));
        rt.block_on(async {
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|c| tokio::spawn(writer(lockstep.client_opts(), round, c, acked.clone())))
                .collect();
            // Writes must be flowing before the kill (a loaded machine may
            // take a while to connect the clients).
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while acked.lock().map(|a| a.is_empty()).unwrap_or(true)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(kill_after).await;
            lockstep.kill();
            for t in tasks {
                let _ = t.await;
            }
        });
        let acked = std::mem::take(&mut *acked.lock().expect("lock"));
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged"
        );

        let journal = Journal::open(journal_dir.path())
            .unwrap_or_else(|e| panic!("round {round}: the journal does not reopen: {e}"));
        let journaled: HashSet<String> = journal
            .entries()
            .map(|e| e.unwrap_or_else(|err| panic!("round {round}: unreadable entry: {err}")))
            .map(|e| String::from_utf8_lossy(&e.statement.sql().to_bytes()).into_owned())
            .collect();
        journal.close();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|k| !journaled.contains(&format!("INSERT INTO d.t (k) VALUES ('{k}')")))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged writes are not in the journal: {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} acknowledged writes all journaled",
            acked.len()
        );
        all_acked.extend(acked);
    }
    // And the master has them all (the entry was durable before it ran).
    let on_master: HashSet<String> = root_rows(cluster.master(), "SELECT k FROM d.t")
        .into_iter()
        .collect();
    assert!(all_acked.iter().all(|k| on_master.contains(k)));
}
