//! Sequences in writes (issue "Let the server decide"): `NEXTVAL(s)` and
//! `NEXT VALUE FOR s`. A sequence hands out values in the order its node's
//! sessions ask and does not take them back on rollback, so B, A and the
//! tail each gave rows their own values: under 6 clients every node but the
//! master held other ids, silently. lockstep takes each call's value once
//! on the first node, writes it into the statement, and brings every other
//! node's sequence to it (`SETVAL`); a call that runs once per row, and an
//! insert that leaves a column whose DEFAULT calls NEXTVAL to it, are
//! refused. Prepared statements take their values at each execution.
//!
//! Oracle, for a seeded concurrent workload (`LOCKSTEP_SEED` replays one):
//! every node's rows equal the master's, every node's sequence continues
//! above every value written, `lockstep check` passes.

mod support;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{checksums, root_rows, runtime, seed, server_code, wait_for_tail, Cluster, Lockstep};

const CLIENTS: u64 = 6;
const OPERATIONS: u64 = 100;

const SCHEMA: &str = "CREATE DATABASE q; CREATE SEQUENCE q.s; \
    CREATE TABLE q.t (id BIGINT PRIMARY KEY, who INT, extra BIGINT) ENGINE=InnoDB; \
    CREATE TABLE q.d (id BIGINT PRIMARY KEY DEFAULT (NEXTVAL(q.s)), who INT) ENGINE=InnoDB;";

#[test]
fn rows_numbered_from_a_sequence_hold_the_same_values_on_every_node() {
    let seed = seed();
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, SCHEMA);
    let rt = runtime();
    rt.block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        for (sql, code) in [
            ("INSERT INTO q.t SELECT NEXTVAL(q.s), 0, 0 FROM q.d", 1235),
            ("UPDATE q.t SET extra = NEXTVAL(q.s)", 1235),
            ("INSERT INTO q.d (who) VALUES (0)", 1235),
        ] {
            let refused = c.query_drop(sql).await.expect_err(sql);
            assert_eq!(server_code(&refused), Some(code), "{sql}: {refused}");
        }
        let refused = c
            .prep("UPDATE q.t SET extra = NEXTVAL(q.s) WHERE who = ?")
            .await
            .expect_err("prepared once per row");
        assert_eq!(server_code(&refused), Some(1235), "{refused}");
        // The column given explicitly: its DEFAULT does not run.
        c.query_drop("INSERT INTO q.d (id, who) VALUES (NEXTVAL(q.s), 0)")
            .await
            .expect("explicit value");

        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let opts = lockstep.client_opts();
            clients.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client));
                let mut c = Conn::new(opts).await.expect("connect");
                let prepared = c
                    .prep("INSERT INTO q.t VALUES (NEXTVAL(q.s), ?, NEXT VALUE FOR q.s)")
                    .await
                    .expect("prepare");
                for _ in 0..OPERATIONS {
                    let in_transaction = rng.gen_bool(0.3);
                    if in_transaction {
                        c.query_drop("BEGIN").await.expect("begin");
                    }
                    if rng.gen_bool(0.2) {
                        match c.exec_drop(&prepared, (client,)).await {
                            Ok(()) => {}
                            Err(e) if matches!(server_code(&e), Some(1213 | 1205)) => {}
                            Err(e) => panic!("prepared insert: {e} (seed {seed})"),
                        }
                    }
                    let sql = match rng.gen_range(0..4) {
                        0 => format!(
                            "INSERT INTO q.t VALUES (NEXTVAL(q.s), {client}, NEXT VALUE FOR q.s)"
                        ),
                        1 => "SET @n = NEXTVAL(q.s)".to_string(),
                        2 => format!("INSERT INTO q.t VALUES (@n + 1000000, {client}, @n)"),
                        _ => format!("INSERT INTO q.d (id, who) VALUES (NEXTVAL(q.s), {client})"),
                    };
                    match c.query_drop(&sql).await {
                        Ok(()) => {}
                        // `@n + 1000000` again (1062), or before any SET (1048).
                        Err(e) if matches!(server_code(&e), Some(1062 | 1048 | 1213 | 1205)) => {}
                        Err(e) => panic!("{sql}: {e} (seed {seed})"),
                    }
                    if in_transaction {
                        let end = if rng.gen_bool(0.7) {
                            "COMMIT"
                        } else {
                            "ROLLBACK"
                        };
                        c.query_drop(end).await.expect("end");
                    }
                }
            }));
        }
        for client in clients {
            client.await.expect("client");
        }
    });
    wait_for_tail(&cluster, Duration::from_secs(60));
    let tables = ["q.t", "q.d", "lockstep.commits"];
    let master = checksums(cluster.master(), &tables);
    let written = root_rows(
        cluster.master(),
        "SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM q.d), \
         (SELECT COALESCE(MAX(extra), 0) FROM q.t), \
         (SELECT COALESCE(MAX(id), 0) FROM q.t WHERE id < 1000000))",
    );
    let written: i64 = written[0].parse().expect("a number");
    assert!(written > 0, "the workload wrote nothing");
    for node in &cluster.nodes {
        assert_eq!(
            checksums(node, &tables),
            master,
            "port {} holds other values than the master (seed {seed})",
            node.port
        );
        let next: i64 = root_rows(node, "SELECT NEXTVAL(q.s)")[0]
            .parse()
            .expect("a number");
        assert!(
            next > written,
            "port {}: the sequence would hand out {next} again (written up to {written})",
            node.port
        );
    }
    support::assert_check_passes(&lockstep);
}
