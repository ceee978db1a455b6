//! A job queue: workers claim rows with `SELECT … FOR UPDATE SKIP LOCKED`
//! in their own transaction and then write the rows they claimed (the
//! pattern of Laravel's and many other queues on MariaDB 10.6+). Run on B
//! first, each node skipped the rows its own sessions held at that moment:
//! B and A locked different rows, the compare step saw different result
//! rows and quarantined B and the tail, and with B kept the workers' next
//! writes waited for one another across the two nodes, where no deadlock
//! detector sees the cycle, until `innodb_lock_wait_timeout`. A claim now
//! runs on the master alone; the writes that follow take the write path.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::{Rng, SeedableRng};
use support::{root_rows, runtime, wait_for_tail, Cluster, Lockstep};

const JOBS: u32 = 300;

#[test]
fn workers_claiming_jobs_with_skip_locked_do_each_job_once_on_every_node() {
    let seed = support::seed();
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        &format!(
            "CREATE DATABASE q; \
             CREATE TABLE q.jobs (id INT AUTO_INCREMENT PRIMARY KEY, state VARCHAR(8) NOT NULL, \
               owner INT, done_at DATETIME(6), tries INT NOT NULL DEFAULT 0, KEY (state)) \
               ENGINE=InnoDB; \
             INSERT INTO q.jobs (state) SELECT 'new' FROM mysql.seq_1_to_{JOBS};"
        ),
    );
    let rt = runtime();
    rt.block_on(async {
        // Writing what a SKIP LOCKED read chose would write other rows on
        // each node: refused before any node runs it.
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let refused = c
            .query_drop(
                "UPDATE q.jobs SET owner = 9 WHERE id IN \
                 (SELECT id FROM (SELECT id FROM q.jobs LIMIT 5 FOR UPDATE SKIP LOCKED) AS j)",
            )
            .await
            .expect_err("refused");
        assert_eq!(support::server_code(&refused), Some(1235), "{refused}");
    });
    let (done, deadlocks) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut workers = Vec::new();
        for worker in 0..6u64 {
            let opts = lockstep.client_opts();
            workers.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ worker);
                let mut c = Conn::new(opts).await.expect("connect");
                c.query_drop("SET autocommit = 0, innodb_lock_wait_timeout = 5")
                    .await
                    .expect("session");
                let mut done = Vec::new();
                let mut deadlocks = 0;
                while Instant::now() < deadline {
                    let claimed: Result<Option<u32>, _> = c
                        .query_first(
                            "SELECT id FROM q.jobs WHERE state = 'new' ORDER BY id LIMIT 1 \
                             FOR UPDATE SKIP LOCKED",
                        )
                        .await;
                    let id = match claimed {
                        Ok(Some(id)) => id,
                        Ok(None) => {
                            // Every open job is claimed; one may still be
                            // given back (rolled back).
                            c.query_drop("COMMIT").await.expect("commit");
                            let open: Option<u32> = c
                                .query_first("SELECT COUNT(*) FROM q.jobs WHERE state = 'new'")
                                .await
                                .expect("count");
                            c.query_drop("COMMIT").await.expect("commit");
                            if open == Some(0) {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                        Err(e) => panic!("worker {worker}: claim: {e}"),
                    };
                    let give_up = rng.gen_ratio(1, 6);
                    let write = if give_up {
                        format!("UPDATE q.jobs SET tries = tries + 1 WHERE id = {id}")
                    } else {
                        format!(
                            "UPDATE q.jobs SET state = 'done', owner = {worker}, \
                             done_at = NOW(6), tries = tries + 1 WHERE id = {id}"
                        )
                    };
                    let end = if give_up { "ROLLBACK" } else { "COMMIT" };
                    let result = async {
                        c.query_drop(&write).await?;
                        c.query_drop(end).await
                    }
                    .await;
                    match result {
                        Ok(()) if !give_up => done.push(id),
                        Ok(()) => {}
                        // MariaDB's own answer to the queue's gap locks.
                        Err(mysql_async::Error::Server(e)) if e.code == 1213 => {
                            deadlocks += 1;
                            c.query_drop("ROLLBACK").await.expect("rollback");
                        }
                        Err(e) => panic!("worker {worker}: job {id}: {e}"),
                    }
                }
                (done, deadlocks)
            }));
        }
        // A monitor peeks at the queue with autocommit on: its locking read
        // takes the write path (B, then A), where the rows it skips differ
        // between the nodes, which is no divergence.
        let peeker = {
            let opts = lockstep.client_opts();
            tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                let mut peeks = 0u32;
                while Instant::now() < deadline && peeks < 2_000 {
                    let seen: Vec<u32> = c
                        .query(
                            "SELECT id FROM q.jobs WHERE state = 'new' ORDER BY id LIMIT 3 \
                             FOR UPDATE SKIP LOCKED",
                        )
                        .await
                        .expect("peek");
                    peeks += 1;
                    if seen.is_empty() {
                        break;
                    }
                }
                peeks
            })
        };
        let mut done = Vec::new();
        let mut deadlocks = 0;
        let peeks = peeker.await.expect("peeker");
        println!("{peeks} peeks at the queue");
        for w in workers {
            let (d, k) = w.await.expect("worker");
            done.extend(d);
            deadlocks += k;
        }
        (done, deadlocks)
    });
    println!("{} jobs done, {deadlocks} deadlocks retried", done.len());
    let mut times: BTreeMap<u32, u32> = BTreeMap::new();
    for id in &done {
        *times.entry(*id).or_default() += 1;
    }
    assert!(
        times.values().all(|n| *n == 1),
        "a job was done twice: {:?}",
        times.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(done.len(), JOBS as usize, "every job was done");
    wait_for_tail(&cluster, Duration::from_secs(30));
    let query = "SELECT id, state, owner, done_at, tries FROM q.jobs ORDER BY id";
    let master = root_rows(cluster.master(), query);
    for node in &cluster.nodes[1..] {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
    support::assert_check_passes(&lockstep);
}

/// A write of a claimed row by a session that did not claim it (an admin
/// cancels job 1 while a worker holds it): the admin passes B and waits on
/// the master for the worker, whose own write of that row waits on B for
/// the admin, a cycle across the nodes that neither detector sees. Before
/// lockstep watched for it, both waited until `innodb_lock_wait_timeout`
/// (50 s here) and got 1205. Now the admin's statement is interrupted on
/// the master and answers 1213, as a deadlock's victim; the worker goes
/// on, and the admin's retry waits for the worker's commit as it would
/// directly. Oracle: no 1205, the cycle broken long before the timeout
/// (printed), the job ends as the retry left it, every node equals the
/// master.
#[test]
fn a_claimed_row_written_by_another_session_costs_a_deadlock_not_the_lock_timeout() {
    claimed_row_written_by_another_session(false);
}

/// The same inside the admin's transaction, which first touched job 2: as
/// a deadlock's victim in MariaDB, it loses the whole transaction, on
/// every node (job 2 is touched once, by the retry).
#[test]
fn a_cycles_victim_inside_a_transaction_loses_the_transaction_everywhere() {
    claimed_row_written_by_another_session(true);
}

fn claimed_row_written_by_another_session(admin_in_transaction: bool) {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE q; \
         CREATE TABLE q.jobs (id INT PRIMARY KEY, state VARCHAR(10) NOT NULL, owner INT) \
           ENGINE=InnoDB; \
         INSERT INTO q.jobs (id, state) SELECT seq, 'new' FROM mysql.seq_1_to_10;",
    );
    let rt = runtime();
    let (broken_after, admin_deadlocks) = rt.block_on(async {
        let mut worker = Conn::new(lockstep.client_opts()).await.expect("connect");
        worker
            .query_drop("SET autocommit = 0")
            .await
            .expect("session");
        let claimed: Option<u32> = worker
            .query_first(
                "SELECT id FROM q.jobs WHERE state = 'new' ORDER BY id LIMIT 1 \
                 FOR UPDATE SKIP LOCKED",
            )
            .await
            .expect("claim");
        assert_eq!(claimed, Some(1));
        let admin = {
            let opts = lockstep.client_opts();
            tokio::spawn(async move {
                let mut c = Conn::new(opts).await.expect("connect");
                let mut deadlocks = 0;
                loop {
                    let attempt = async {
                        if admin_in_transaction {
                            c.query_drop("BEGIN").await?;
                            c.query_drop(
                                "UPDATE q.jobs SET owner = COALESCE(owner, 0) + 1 WHERE id = 2",
                            )
                            .await?;
                        }
                        c.query_drop("UPDATE q.jobs SET state = 'cancelled' WHERE id = 1")
                            .await?;
                        if admin_in_transaction {
                            c.query_drop("COMMIT").await?;
                        }
                        Ok::<_, mysql_async::Error>(())
                    };
                    match attempt.await {
                        Ok(()) => return deadlocks,
                        Err(e) if support::server_code(&e) == Some(1213) => {
                            deadlocks += 1;
                            // Already rolled back, as MariaDB rolls back a
                            // deadlock's victim: a no-op.
                            c.query_drop("ROLLBACK").await.expect("rollback");
                        }
                        Err(e) => panic!("admin: {e}"),
                    }
                }
            })
        };
        // The admin passed B and waits on the master for the worker.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        worker
            .query_drop("UPDATE q.jobs SET state = 'done', owner = 1 WHERE id = 1")
            .await
            .expect("the worker's write of its claimed row");
        let broken_after = started.elapsed();
        worker.query_drop("COMMIT").await.expect("commit");
        let deadlocks = admin.await.expect("admin");
        (broken_after, deadlocks)
    });
    println!("the cycle was broken after {broken_after:?}; the admin retried {admin_deadlocks} deadlock(s)");
    assert!(
        broken_after < Duration::from_secs(20),
        "the worker waited {broken_after:?}: until the lock wait timeout"
    );
    assert_eq!(
        admin_deadlocks, 1,
        "the admin's first try was the cycle's victim"
    );
    wait_for_tail(&cluster, Duration::from_secs(30));
    let query = "SELECT id, state, owner FROM q.jobs ORDER BY id";
    let master = root_rows(cluster.master(), query);
    assert_eq!(
        master[0], "1\tcancelled\t1",
        "the admin's retry came after the worker"
    );
    if admin_in_transaction {
        assert_eq!(
            master[1], "2\tnew\t1",
            "the victim's transaction was rolled back"
        );
    }
    for node in &cluster.nodes[1..] {
        assert_eq!(root_rows(node, query), master, "port {}", node.port);
    }
    support::assert_check_passes(&lockstep);
}
