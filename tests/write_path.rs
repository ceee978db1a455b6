//! The write path on three real MariaDB nodes: every write journaled, run on
//! the first slave before the master, replayed on the tail, and the same
//! data everywhere.

mod support;

use std::time::Duration;

use lockstep::journal::{EntryKind, EntryState, Journal, Outcome};
use mysql_async::prelude::Queryable;
use mysql_async::Row;
use support::{checksums, root_rows, root_sql, runtime, wait_for_tail, Cluster, Lockstep};

const TABLES: &[&str] = &["app.items", "app.counters", "lockstep.commits"];

fn setup_schema() -> &'static str {
    "CREATE DATABASE app;
     CREATE TABLE app.items (
        id INT AUTO_INCREMENT PRIMARY KEY,
        label VARCHAR(64) NOT NULL,
        made DATETIME(6) NOT NULL,
        r DOUBLE NOT NULL,
        u VARCHAR(36) NOT NULL
     ) ENGINE=InnoDB;
     CREATE TABLE app.counters (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB;
     INSERT INTO app.counters VALUES (1, 0), (2, 0), (3, 0);"
}

async fn query_string(conn: &mut mysql_async::Conn, sql: &str) -> Option<String> {
    let row: Option<Row> = conn.query_first(sql).await.expect("query");
    row.and_then(|r| {
        r.get_opt::<Option<String>, usize>(0)
            .and_then(Result::ok)
            .flatten()
    })
}

#[test]
fn writes_reach_every_node_identically_and_are_journaled() {
    let cluster = Cluster::start(3);
    let mut lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, setup_schema());

    let rt = runtime();
    let (request_id, rolled_back_id) = rt.block_on(async {
        let mut c = mysql_async::Conn::new(lockstep.client_opts().db_name(Some("app")))
            .await
            .expect("connect");
        assert_eq!(
            query_string(&mut c, "SELECT LOCKSTEP_REQUEST_ID()").await,
            None
        );
        // Unpinnable and pinned non-determinism in one statement.
        c.query_drop(
            "INSERT INTO items (label, made, r, u) VALUES ('a', NOW(6), RAND(), UUID()), \
             ('b', SYSDATE(6), RAND(), UUID())",
        )
        .await
        .expect("insert");
        let request_id = query_string(&mut c, "SELECT LOCKSTEP_REQUEST_ID()")
            .await
            .expect("a request id");
        assert_eq!(c.last_insert_id(), None, "SELECT has no insert id");
        // A transaction that commits and one that rolls back.
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("UPDATE counters SET n = n + 1 WHERE id = 1")
            .await
            .expect("update");
        c.query_drop("INSERT INTO items (label, made, r, u) VALUES ('c', NOW(), RAND(), UUID())")
            .await
            .expect("insert in txn");
        let in_txn = query_string(&mut c, "SELECT COUNT(*) FROM items").await;
        assert_eq!(in_txn.as_deref(), Some("3"));
        c.query_drop("COMMIT").await.expect("commit");
        c.query_drop("START TRANSACTION").await.expect("begin");
        c.query_drop("UPDATE counters SET n = n + 100 WHERE id = 2")
            .await
            .expect("update");
        let rolled_back_id = query_string(&mut c, "SELECT LOCKSTEP_REQUEST_ID()")
            .await
            .expect("id");
        c.query_drop("ROLLBACK").await.expect("rollback");
        // A failing statement changes nothing anywhere.
        let dup = c.query_drop("INSERT INTO counters VALUES (1, 5)").await;
        assert!(
            matches!(dup, Err(mysql_async::Error::Server(ref e)) if e.code == 1062),
            "{dup:?}"
        );
        // AUTO_INCREMENT through the session and prepared statements.
        c.exec_drop(
            "INSERT INTO items (label, made, r, u) VALUES (?, NOW(), RAND(), ?)",
            ("d", "fixed"),
        )
        .await
        .expect("prepared insert");
        let id: Option<String> = query_string(&mut c, "SELECT LAST_INSERT_ID()").await;
        assert_eq!(id.as_deref(), Some("4"));
        // UUID() in a prepared statement: each execution its own value, the
        // same on every node.
        for label in ["e", "f"] {
            c.exec_drop(
                "INSERT INTO items (label, made, r, u) VALUES (?, NOW(), RAND(), UUID())",
                (label,),
            )
            .await
            .expect("prepared insert with UUID()");
        }
        // In a transaction reads take the write path: a rewritten UUID()
        // keeps its column name.
        c.query_drop("BEGIN").await.expect("begin");
        let result = c
            .query_iter("SELECT UUID(), SYSDATE(3)")
            .await
            .expect("select");
        let names: Vec<String> = result
            .columns()
            .expect("columns")
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        drop(result);
        assert_eq!(names, ["UUID()", "SYSDATE(3)"]);
        c.query_drop("COMMIT").await.expect("commit");
        // Reads outside a transaction see the real clock again.
        let now = query_string(
            &mut c,
            "SELECT UNIX_TIMESTAMP() - UNIX_TIMESTAMP(MAX(made)) < 60 FROM items",
        )
        .await;
        assert_eq!(now.as_deref(), Some("1"));
        c.disconnect().await.expect("disconnect");
        (request_id, rolled_back_id)
    });

    wait_for_tail(&cluster, Duration::from_secs(20));
    assert_same_data(&cluster, TABLES);
    let rows = root_sql(
        cluster.master(),
        "SELECT id, label FROM app.items ORDER BY id",
    );
    assert_eq!(rows, "id\tlabel\n1\ta\n2\tb\n3\tc\n4\td\n5\te\n6\tf\n");
    let uuids = root_rows(
        cluster.master(),
        "SELECT COUNT(DISTINCT u) FROM app.items WHERE label IN ('e', 'f')",
    );
    assert_eq!(uuids, ["2"]);
    assert_eq!(
        root_rows(cluster.master(), "SELECT n FROM app.counters ORDER BY id"),
        ["1", "0", "0"]
    );

    lockstep.stop();
    let journal = Journal::open(&lockstep.journal_dir).expect("journal opens");
    let id = uuid::Uuid::parse_str(&request_id).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    let entry = journal
        .entry(id)
        .expect("read")
        .expect("the insert is journaled");
    assert_eq!(entry.kind, EntryKind::Write);
    let sql = String::from_utf8(entry.statement.sql().to_bytes()).expect("utf8");
    assert!(
        !sql.contains("UUID()") && !sql.contains("SYSDATE"),
        "rewritten: {sql}"
    );
    assert!(
        matches!(entry.state, EntryState::Committed { .. }),
        "{:?}",
        entry.state
    );
    let nodes: Vec<&str> = entry.results.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(nodes, ["n1", "n0", "n2"], "B, then A, then the tail");
    assert!(entry.results.iter().all(|r| matches!(
        r.outcome,
        Outcome::Ok {
            affected_rows: 2,
            ..
        }
    )));
    let rolled_back = journal
        .entry(uuid::Uuid::parse_str(&rolled_back_id).expect("uuid"))
        .expect("read")
        .expect("journaled");
    assert_eq!(rolled_back.state, EntryState::RolledBack);
}

#[test]
fn every_write_reaches_the_first_slave_before_the_master() {
    let cluster = Cluster::start(3);
    for node in &cluster.nodes[..2] {
        root_sql(
            node,
            "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1;",
        );
    }
    let mut lockstep = Lockstep::start(&cluster, "");
    let rt = runtime();
    rt.block_on(async {
        let mut c = mysql_async::Conn::new(lockstep.client_opts())
            .await
            .expect("connect");
        c.query_drop("CREATE DATABASE o").await.expect("db");
        c.query_drop("CREATE TABLE o.t (id INT PRIMARY KEY, v INT)")
            .await
            .expect("table");
        for i in 0..20 {
            c.query_drop(format!(
                "INSERT INTO o.t VALUES ({i}, {i}) /* marker-{i} */"
            ))
            .await
            .expect("insert");
            c.query_drop(format!(
                "UPDATE o.t SET v = v + 1 WHERE id = {i} /* marker-u{i} */"
            ))
            .await
            .expect("update");
        }
        c.disconnect().await.expect("disconnect");
    });
    let seen_at = |node: &lockstep::mariadb::MariaDb| -> Vec<(String, String)> {
        root_sql(
            node,
            "SELECT REGEXP_SUBSTR(argument, 'marker-u?[0-9]+'), DATE_FORMAT(event_time, '%Y%m%d%H%i%s%f') \
             FROM mysql.general_log WHERE argument LIKE '%marker-%' AND command_type = 'Query' \
             AND argument NOT LIKE '%general_log%' ORDER BY 1",
        )
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect()
    };
    let on_b = seen_at(&cluster.nodes[1]);
    let on_a = seen_at(&cluster.nodes[0]);
    assert_eq!(on_a.len(), 40, "every statement reached A: {on_a:?}");
    assert_eq!(on_b.len(), 40, "every statement reached B: {on_b:?}");
    for ((marker_a, time_a), (marker_b, time_b)) in on_a.iter().zip(&on_b) {
        assert_eq!(marker_a, marker_b);
        assert!(time_b <= time_a, "{marker_a}: B at {time_b}, A at {time_a}");
    }

    // One journal entry per statement, with B's, A's and the tail's result.
    wait_for_tail(&cluster, Duration::from_secs(20));
    lockstep.stop();
    let journal = Journal::open(&lockstep.journal_dir).expect("journal opens");
    let entries: Vec<_> = journal
        .entries()
        .map(|e| e.expect("readable"))
        .filter(|e| e.kind == EntryKind::Write)
        .collect();
    assert_eq!(entries.len(), 40, "one entry per INSERT and UPDATE");
    for e in &entries {
        let nodes: Vec<&str> = e.results.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n0", "n2"], "{e:?}");
        assert!(e.results.iter().all(|r| r.outcome.is_ok()), "{e:?}");
        assert!(matches!(e.state, EntryState::Committed { .. }), "{e:?}");
    }
    let serialized = journal
        .entries()
        .filter(|e| matches!(e, Ok(e) if e.kind == EntryKind::Serialized))
        .count();
    assert_eq!(serialized, 2, "CREATE DATABASE and CREATE TABLE");
}

/// Every node's `CHECKSUM TABLE` equals the master's; when not, the test
/// fails naming the first rows that differ.
fn assert_same_data(cluster: &Cluster, tables: &[&str]) {
    let reference = checksums(cluster.master(), tables);
    for (i, node) in cluster.nodes.iter().enumerate().skip(1) {
        let sums = checksums(node, tables);
        for ((table, a), b) in tables.iter().zip(&reference).zip(&sums) {
            if a == b {
                continue;
            }
            let dump = |n| root_rows(n, &format!("SELECT * FROM {table} ORDER BY 1"));
            let (rows_a, rows_b) = (dump(cluster.master()), dump(node));
            let diff: Vec<_> = rows_a
                .iter()
                .zip(&rows_b)
                .filter(|(x, y)| x != y)
                .take(5)
                .collect();
            panic!(
                "{table} differs between n0 and n{i} ({} vs {} rows); first differences: {diff:#?}",
                rows_a.len(),
                rows_b.len()
            );
        }
    }
}

/// What the concurrent clients got an OK for.
#[derive(Default)]
struct Acked {
    labels: Vec<String>,
    rolled_back: Vec<String>,
    increments: [i64; 3],
    /// Deadlocks and lock wait timeouts the client got (and retried).
    conflicts: usize,
    errors: Vec<String>,
}

/// One client of the concurrency test: a random mix of conflicting
/// updates, AUTO_INCREMENT inserts, transactions that commit or roll back,
/// deadlock-prone pairs and non-deterministic functions, until `until`.
async fn concurrent_client(
    opts: mysql_async::OptsBuilder,
    client: usize,
    until: std::time::Instant,
) -> Acked {
    use rand::Rng;
    let mut acked = Acked::default();
    let mut c = mysql_async::Conn::new(opts.db_name(Some("app")))
        .await
        .expect("connect");
    // Two clients run with autocommit off: their single statements commit
    // only with an explicit COMMIT.
    let manual_commit = client < 2;
    if manual_commit {
        c.query_drop("SET autocommit = 0")
            .await
            .expect("autocommit off");
    }
    let mut n = 0;
    while std::time::Instant::now() < until {
        n += 1;
        let label = format!("c{client}-{n}");
        let choice = rand::thread_rng().gen_range(0..6);
        let hot = rand::thread_rng().gen_range(1..=3usize);
        let other = hot % 3 + 1;
        let result: Result<(), mysql_async::Error> = async {
            match choice {
                0 => {
                    c.query_drop(format!("UPDATE counters SET n = n + 1 WHERE id = {hot}")).await?;
                    if manual_commit {
                        c.query_drop("COMMIT").await?;
                    }
                    acked.increments[hot - 1] += 1;
                }
                1 => {
                    c.query_drop(format!(
                        "INSERT INTO items (label, made, r, u) VALUES ('{label}', NOW(6), RAND(), UUID())"
                    ))
                    .await?;
                    if manual_commit {
                        c.query_drop("COMMIT").await?;
                    }
                    acked.labels.push(label.clone());
                    c.query_drop(format!(
                        "INSERT INTO refs (item_id, label, made) VALUES (LAST_INSERT_ID(), '{label}', NOW())"
                    ))
                    .await?;
                    if manual_commit {
                        c.query_drop("COMMIT").await?;
                    }
                }
                2 => {
                    c.query_drop("BEGIN").await?;
                    c.query_drop(format!("UPDATE counters SET n = n + 10 WHERE id = {hot}")).await?;
                    c.query_drop(format!(
                        "INSERT INTO items (label, made, r, u) VALUES ('{label}', NOW(6), RAND(), UUID())"
                    ))
                    .await?;
                    c.query_drop(format!("UPDATE counters SET n = n + 100 WHERE id = {other}")).await?;
                    c.query_drop("COMMIT").await?;
                    acked.increments[hot - 1] += 10;
                    acked.increments[other - 1] += 100;
                    acked.labels.push(label.clone());
                }
                3 => {
                    c.query_drop("START TRANSACTION").await?;
                    c.query_drop(format!(
                        "INSERT INTO items (label, made, r, u) VALUES ('rb-{label}', NOW(6), RAND(), UUID())"
                    ))
                    .await?;
                    c.query_drop(format!("UPDATE counters SET n = n + 1000 WHERE id = {hot}")).await?;
                    c.query_drop("ROLLBACK").await?;
                    acked.rolled_back.push(format!("rb-{label}"));
                }
                4 => {
                    // Deadlock-prone: two hot rows in either order.
                    c.query_drop("BEGIN").await?;
                    c.query_drop(format!("UPDATE counters SET n = n + 1 WHERE id = {hot}")).await?;
                    c.query_drop(format!("UPDATE counters SET n = n + 1 WHERE id = {other}")).await?;
                    c.query_drop("COMMIT").await?;
                    acked.increments[hot - 1] += 1;
                    acked.increments[other - 1] += 1;
                }
                _ => {
                    let rows: Vec<Row> = c.query("SELECT id, n FROM counters").await?;
                    assert_eq!(rows.len(), 3);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            match &e {
                mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205 => {
                    acked.conflicts += 1;
                    let _ = c.query_drop("ROLLBACK").await;
                }
                other => acked.errors.push(format!("client {client}: {other}")),
            }
        }
    }
    let _ = c.disconnect().await;
    acked
}

/// DDL under write load: `CREATE TABLE … AS SELECT` copies the hot rows, so
/// a node that ran it at another point among the updates differs. It reads
/// them under shared row locks while the updates run, as directly, so it
/// may get MariaDB's deadlock or lock wait timeout: it tries again.
async fn snapshot_client(opts: mysql_async::OptsBuilder, until: std::time::Instant) -> usize {
    let mut c = mysql_async::Conn::new(opts).await.expect("connect");
    let mut made = 0;
    while std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let copied = c
            .query_drop(format!(
                "CREATE TABLE app.snap{made} ENGINE=InnoDB AS SELECT * FROM app.counters"
            ))
            .await;
        match copied {
            Ok(()) => made += 1,
            // It reads the hot rows under shared locks, as directly: a
            // deadlock or a lock wait timeout is MariaDB's answer too.
            Err(mysql_async::Error::Server(e)) if [1205, 1213].contains(&e.code) => {}
            Err(e) => panic!("snapshot table: {e}"),
        }
    }
    let _ = c.disconnect().await;
    made
}

#[test]
fn concurrent_clients_leave_identical_nodes() {
    let seconds: u64 = std::env::var("LOCKSTEP_CONCURRENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let schema = format!(
        "{} CREATE TABLE app.refs (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT NOT NULL, \
         label VARCHAR(64) NOT NULL, made DATETIME NOT NULL) ENGINE=InnoDB;",
        setup_schema()
    );
    support::lockstep_sql(&lockstep, &schema);

    let rt = runtime();
    let until = std::time::Instant::now() + Duration::from_secs(seconds);
    let (results, snapshots): (Vec<Acked>, usize) = rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|client| tokio::spawn(concurrent_client(lockstep.client_opts(), client, until)))
            .collect();
        let snapshots = tokio::spawn(snapshot_client(lockstep.client_opts(), until));
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("client task"));
        }
        (results, snapshots.await.expect("snapshot task"))
    });
    eprintln!(
        "{} acknowledged inserts, {} conflicts (deadlocks, lock waits) retried by clients",
        results.iter().map(|r| r.labels.len()).sum::<usize>(),
        results.iter().map(|r| r.conflicts).sum::<usize>()
    );
    let errors: Vec<&String> = results.iter().flat_map(|r| &r.errors).collect();
    assert!(
        errors.is_empty(),
        "unexpected errors: {errors:?}\n{}",
        lockstep.log()
    );

    wait_for_tail(&cluster, Duration::from_secs(60));
    let snapshot_tables: Vec<String> = (0..snapshots).map(|i| format!("app.snap{i}")).collect();
    let mut tables = vec!["app.items", "app.counters", "app.refs", "lockstep.commits"];
    tables.extend(snapshot_tables.iter().map(String::as_str));
    assert!(snapshots > 0, "DDL ran during the writes");
    assert_same_data(&cluster, &tables);
    let mut expected = [0i64; 3];
    for r in &results {
        for (e, i) in expected.iter_mut().zip(r.increments) {
            *e += i;
        }
    }
    let counters: Vec<i64> = root_rows(cluster.master(), "SELECT n FROM app.counters ORDER BY id")
        .iter()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(counters, expected, "every acknowledged increment, once");
    let acked: Vec<&String> = results.iter().flat_map(|r| &r.labels).collect();
    assert!(
        acked.len() > 100,
        "the test did work: {} inserts",
        acked.len()
    );
    for node in &cluster.nodes {
        let labels: std::collections::HashSet<String> =
            root_rows(node, "SELECT label FROM app.items")
                .into_iter()
                .collect();
        let missing: Vec<_> = acked.iter().filter(|l| !labels.contains(**l)).collect();
        assert!(
            missing.is_empty(),
            "node {} lacks acknowledged rows {missing:?}",
            node.port
        );
        assert!(
            !labels.iter().any(|l| l.starts_with("rb-")),
            "a rolled-back row is on {}",
            node.port
        );
    }
    // Rows inserted with LAST_INSERT_ID() point at their own item everywhere.
    let mismatched = root_rows(
        &cluster.nodes[2],
        "SELECT COUNT(*) FROM app.refs r JOIN app.items i ON i.id = r.item_id WHERE i.label <> r.label",
    );
    assert_eq!(mismatched, ["0"]);
}

#[test]
fn non_transactional_tables_keep_working_and_are_named_once() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    let sql = "CREATE DATABASE m; CREATE TABLE m.plain (id INT PRIMARY KEY) ENGINE=MyISAM; \
               INSERT INTO m.plain VALUES (1); INSERT INTO m.plain VALUES (2); \
               UPDATE m.plain SET id = id + 10;";
    support::lockstep_sql(&lockstep, sql);
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id FROM m.plain ORDER BY id"),
            ["11", "12"]
        );
    }
    let log = lockstep.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("non-transactional table"))
        .count();
    assert_eq!(warnings, 1, "one warning for m.plain:\n{log}");
    assert!(log.contains("table=plain"), "{log}");
}

#[test]
fn a_statement_the_master_refuses_leaves_no_trace_on_the_slave() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE r; CREATE TABLE r.t (v INT PRIMARY KEY) ENGINE=InnoDB;",
    );
    // Only the master refuses 13.
    support::refuse_on(cluster.master(), "r.t", 13, "no 13 here");
    let rt = runtime();
    rt.block_on(async {
        let mut c = mysql_async::Conn::new(lockstep.client_opts().db_name(Some("r")))
            .await
            .expect("connect");
        let refused = c.query_drop("INSERT INTO t VALUES (13)").await;
        match refused {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!((e.code, e.message.as_str()), (1644, "no 13 here"))
            }
            other => panic!("expected the master's SIGNAL, got {other:?}"),
        }
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO t VALUES (1)").await.expect("1");
        assert!(c.query_drop("INSERT INTO t VALUES (13)").await.is_err());
        c.exec_drop("INSERT INTO t VALUES (?)", (2,))
            .await
            .expect("2");
        c.query_drop("COMMIT").await.expect("commit");
        c.disconnect().await.expect("disconnect");
    });
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT v FROM r.t ORDER BY v"),
            ["1", "2"],
            "node on port {}",
            node.port
        );
    }
}

#[test]
fn warnings_and_row_counts_survive_the_write_path() {
    let cluster = Cluster::start(2);
    let lockstep = Lockstep::start(&cluster, "");
    let rt = runtime();
    rt.block_on(async {
        let mut c = mysql_async::Conn::new(lockstep.client_opts())
            .await
            .expect("connect");
        c.query_drop("CREATE DATABASE d").await.expect("db");
        c.query_drop("CREATE TABLE d.t (id INT PRIMARY KEY, c CHAR(2))")
            .await
            .expect("table");
        c.query_drop("SET sql_mode = ''").await.expect("sql_mode");
        let warnings = |rows: Vec<Row>| -> Vec<String> {
            rows.iter()
                .map(|r| {
                    r.get_opt::<String, usize>(1)
                        .and_then(Result::ok)
                        .unwrap_or_default()
                })
                .collect()
        };
        // Autocommit: lockstep's own commit bookkeeping must not clear them.
        c.query_drop("INSERT INTO d.t VALUES (1, 'abcd')")
            .await
            .expect("insert");
        assert_eq!(c.get_warnings(), 1);
        let rows: Vec<Row> = c.query("SHOW WARNINGS").await.expect("show warnings");
        assert_eq!(warnings(rows), ["1265"]);
        // In a transaction: reads see the client's previous statement.
        c.query_drop("BEGIN").await.expect("begin");
        c.query_drop("INSERT INTO d.t VALUES (2, 'wxyz'), (3, 'ok')")
            .await
            .expect("insert");
        let rows: Vec<Row> = c.query("SHOW WARNINGS").await.expect("show warnings");
        assert_eq!(warnings(rows), ["1265"]);
        c.query_drop("UPDATE d.t SET c = 'u' WHERE id >= 2")
            .await
            .expect("update");
        let count = query_string(&mut c, "SELECT ROW_COUNT()").await;
        assert_eq!(count.as_deref(), Some("2"));
        c.query_drop("COMMIT").await.expect("commit");
        c.disconnect().await.expect("disconnect");
    });
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(node, "SELECT id, c FROM d.t ORDER BY id"),
            ["1\tab", "2\tu", "3\tu"]
        );
    }
}

#[test]
fn a_tail_node_that_was_down_catches_up_across_a_lockstep_restart() {
    let mut cluster = Cluster::start(3);
    let journal = tempfile::tempdir().expect("journal dir");
    let rt = runtime();
    let insert = |lockstep: &Lockstep, from: u32| {
        rt.block_on(async {
            let mut c = mysql_async::Conn::new(lockstep.client_opts())
                .await
                .expect("connect");
            for i in from..from + 50 {
                c.exec_drop("INSERT INTO k.t (id, at) VALUES (?, NOW(6))", (i,))
                    .await
                    .expect("insert");
            }
            c.disconnect().await.expect("disconnect");
        })
    };
    let mut lockstep = Lockstep::start_with_journal(&cluster, "", Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE k; CREATE TABLE k.t (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB;",
    );
    insert(&lockstep, 0);
    wait_for_tail(&cluster, Duration::from_secs(20));

    // The tail node goes down; writes go on; lockstep restarts meanwhile.
    let (dir, port) = (cluster.nodes[2].dir.clone(), cluster.nodes[2].port);
    cluster.nodes[2].stop();
    insert(&lockstep, 100);
    lockstep.stop();
    let lockstep = Lockstep::start_with_journal(&cluster, "", Some(journal.path()));
    insert(&lockstep, 200);
    cluster.nodes[2] = lockstep::mariadb::MariaDb::start(&dir, port, &Default::default())
        .expect("the tail node restarts");

    wait_for_tail(&cluster, Duration::from_secs(60));
    assert_same_data(&cluster, &["k.t", "lockstep.commits"]);
    assert_eq!(
        root_rows(&cluster.nodes[2], "SELECT COUNT(*) FROM k.t"),
        ["150"]
    );
}

/// `SET PASSWORD` without `FOR`, and `ALTER USER CURRENT_USER()`, change the
/// account the statement runs as: through lockstep that is lockstep's own
/// account on every node. Before, a client's `SET PASSWORD = …` changed it
/// on every node and locked lockstep out of them. Now it is refused, and
/// lockstep and every node's account are as they were.
#[test]
fn changing_the_account_lockstep_runs_as_is_refused() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let rt = runtime();
    rt.block_on(async {
        let mut c = mysql_async::Conn::new(lockstep.client_opts())
            .await
            .expect("connect");
        for sql in [
            "SET PASSWORD = PASSWORD('locked-out')",
            "SET PASSWORD FOR CURRENT_USER() = PASSWORD('locked-out')",
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'locked-out'",
        ] {
            let refused = c.query_drop(sql).await.expect_err("refused");
            assert_eq!(
                support::server_code(&refused),
                Some(1235),
                "{sql}: {refused}"
            );
        }
    });
    for node in &cluster.nodes {
        assert_eq!(
            root_rows(
                node,
                "SELECT COUNT(*) FROM mysql.user WHERE authentication_string <> ''"
            ),
            ["0"],
            "no account of port {} has a password",
            node.port
        );
    }
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE still; CREATE TABLE still.t (id INT PRIMARY KEY); \
         INSERT INTO still.t VALUES (1);",
    );
    wait_for_tail(&cluster, Duration::from_secs(20));
}
