//! lockstep killed in the middle of a statement that commits by itself
//! (a DDL): it ran on the synchronous slave B, and waits on the master
//! (held there by `FLUSH TABLES WITH READ LOCK`, taken directly) when
//! lockstep is SIGKILLed. B then holds a change the journal never
//! numbered.
//!
//! With the nodes' binary logs on, the restart reads there which nodes ran
//! it and finishes it as the master decides (`chain::cut_serialized`):
//! every node ends equal to the master, whatever the moment of the kill.
//! Without them it cannot tell; it must say so, naming the statement, and
//! `lockstep check` must see the difference (README, "lockstep stopped
//! during a serialized statement").

mod support;

use std::time::{Duration, Instant};

use support::{root_rows, root_sql, Cluster, Lockstep, PASSWORD, USER};

#[test]
fn a_ddl_cut_between_the_slave_and_the_master_is_named_at_restart() {
    let cluster = Cluster::start(3);
    let mut lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY)",
    );

    let (mut hold, mut ddl) = ddl_held_on_the_master_after_b(&cluster, &lockstep);
    lockstep.kill();
    drop(hold.stdin.take());
    let _ = hold.wait();
    let _ = ddl.wait();

    lockstep.respawn();
    // Named before lockstep serves.
    let named = |log: &str| {
        log.contains("lockstep stopped while this statement that commits by itself was running")
            && log.contains("CREATE TABLE d.cut")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !named(&lockstep.log()) {
        assert!(
            Instant::now() < deadline,
            "the restart did not name the cut statement:\n{}",
            lockstep.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The master may have run it too once the lock went (its thread
    // outlives lockstep's connection); the tail never did. The difference
    // is there, and `lockstep check` sees it.
    assert!(root_rows(&cluster.nodes[2], "SHOW TABLES FROM d LIKE 'cut'").is_empty());
    let check = std::process::Command::new(support::lockstep_bin())
        .args(["check", "--config"])
        .arg(&lockstep.config_path)
        .output()
        .expect("lockstep check");
    assert_ne!(
        check.status.code(),
        Some(0),
        "lockstep check found the nodes equal"
    );
}

/// `CREATE TABLE d.cut` through lockstep, run on B and waiting on the
/// master, where a direct `FLUSH TABLES WITH READ LOCK` holds it: the
/// holding client and the DDL's client.
fn ddl_held_on_the_master_after_b(
    cluster: &Cluster,
    lockstep: &Lockstep,
) -> (std::process::Child, std::process::Child) {
    let mut hold = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-u", "root"])
        .arg("-P")
        .arg(cluster.master().port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("mariadb");
    {
        use std::io::Write;
        let input = hold.stdin.as_mut().expect("stdin");
        input
            .write_all(b"FLUSH TABLES WITH READ LOCK;\n")
            .expect("write");
        input.flush().expect("flush");
    }
    std::thread::sleep(Duration::from_millis(500));
    let ddl = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1"])
        .arg("-P")
        .arg(lockstep.port.to_string())
        .arg("-u")
        .arg(USER)
        .arg(format!("--password={PASSWORD}"))
        .args(["-e", "CREATE TABLE d.cut (a INT)"])
        .spawn()
        .expect("mariadb");
    // Until B has the table: the DDL then waits on the master.
    let b = &cluster.nodes[1];
    let deadline = Instant::now() + Duration::from_secs(20);
    while root_rows(b, "SHOW TABLES FROM d LIKE 'cut'").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the DDL never ran on B:\n{}",
            lockstep.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And until the master has it waiting on the lock: B having run it
    // does not yet mean lockstep sent it on (killed in between, the
    // master would never run it, and the first test's premise fails).
    let waiting = "SELECT ID FROM information_schema.PROCESSLIST \
                   WHERE INFO LIKE '%CREATE TABLE d.cut%' AND ID <> CONNECTION_ID()";
    while root_rows(cluster.master(), waiting).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the DDL never reached the master:\n{}",
            lockstep.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (hold, ddl)
}

/// Nodes that log, as most production nodes do (`--log-bin`): where a
/// serialized statement ran can be read there.
fn logging_cluster() -> Cluster {
    Cluster::start_with(
        3,
        &lockstep::mariadb::ServerOptions {
            args: vec!["--log-bin=binlog".into(), "--server-id=1".into()],
        },
    )
}

/// Each table of schema `d` and its definition, as `node` has them.
fn definitions(node: &lockstep::mariadb::MariaDb) -> Vec<String> {
    root_rows(node, "SHOW TABLES FROM d")
        .iter()
        .flat_map(|t| root_rows(node, &format!("SHOW CREATE TABLE d.`{t}`")))
        .collect()
}

/// Every node holds the master's tables, definitions and rows, and
/// `lockstep check` agrees.
fn assert_every_node_is_the_master(cluster: &Cluster, lockstep: &Lockstep, context: &str) {
    support::wait_for_tail(cluster, Duration::from_secs(60));
    let master = definitions(cluster.master());
    for node in &cluster.nodes {
        assert_eq!(
            definitions(node),
            master,
            "port {} differs from the master ({context})\n{}",
            node.port,
            lockstep.log()
        );
    }
    let tables: Vec<String> = root_rows(cluster.master(), "SHOW TABLES FROM d")
        .iter()
        .map(|t| format!("d.`{t}`"))
        .collect();
    let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
    support::assert_nodes_equal_master(cluster, &tables, context);
    support::assert_check_passes(lockstep);
}

/// The master's lock goes before the restart: the dead run's DDL, which
/// waited there, runs on the master by itself; the restart numbers it.
#[test]
fn a_ddl_the_master_ran_after_the_stop_is_numbered_at_restart() {
    cut_between_the_slave_and_the_master(false, "the master ran it: numbered");
}

/// The master's lock held until the restart: the restart ends the dead
/// run's DDL waiting there (its fence ends every session of the node
/// account, the lock's too), and runs it on the master itself.
#[test]
fn a_ddl_only_the_slave_ran_runs_on_the_master_at_restart() {
    cut_between_the_slave_and_the_master(true, "it ran on the master too");
}

fn cut_between_the_slave_and_the_master(hold_through_restart: bool, finished: &str) {
    let cluster = logging_cluster();
    let mut lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY)",
    );
    let (mut hold, mut ddl) = ddl_held_on_the_master_after_b(&cluster, &lockstep);
    lockstep.kill();
    let _ = ddl.wait();
    let mut release = move || {
        drop(hold.stdin.take());
        let _ = hold.wait();
    };
    if hold_through_restart {
        // Released once the restart is under way (it waits for the lock
        // to run the statement on the master).
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            release();
        });
        lockstep.respawn();
        releaser.join().expect("release");
    } else {
        release();
        // The dead run's DDL, waiting there, now runs on the master.
        let deadline = Instant::now() + Duration::from_secs(20);
        while root_rows(cluster.master(), "SHOW TABLES FROM d LIKE 'cut'").is_empty() {
            assert!(Instant::now() < deadline, "the master never ran the DDL");
            std::thread::sleep(Duration::from_millis(20));
        }
        lockstep.respawn();
    }
    let log = lockstep.log();
    assert!(
        log.contains(finished),
        "the restart did not finish the cut statement as expected ({finished}):\n{log}"
    );
    assert!(!root_rows(cluster.master(), "SHOW TABLES FROM d LIKE 'cut'").is_empty());
    // The finished statement is an ordinary commit: the table takes writes.
    support::lockstep_sql(&lockstep, "INSERT INTO d.cut VALUES (1), (2)");
    assert_every_node_is_the_master(&cluster, &lockstep, "cut between B and the master");
}

/// lockstep and the master die together while the DDL ran on B only (a
/// standby taking over while the master restarts, as `tests/ha.rs` found):
/// the restart cannot ask the dead master, fails over to B, and B, the
/// master now, decides: it ran the DDL, so the DDL is numbered and the old
/// master gets it when it comes back. Marking it failed, as the restart did
/// before, left B, the new master, with a table no other node ever got.
#[test]
fn a_ddl_cut_when_the_master_dies_too_is_decided_by_the_new_master() {
    let mut cluster = logging_cluster();
    let mut lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY)",
    );
    let (mut hold, mut ddl) = ddl_held_on_the_master_after_b(&cluster, &lockstep);
    lockstep.kill();
    cluster.nodes[0].kill();
    drop(hold.stdin.take());
    let _ = hold.wait();
    let _ = ddl.wait();

    lockstep.respawn();
    let log = lockstep.log();
    assert!(
        log.contains("the master ran it: numbered"),
        "the restart did not number the DDL B ran once B was the master:\n{log}"
    );
    let (dir, port) = (cluster.nodes[0].dir.clone(), cluster.nodes[0].port);
    cluster.nodes[0] = lockstep::mariadb::MariaDb::start(
        &dir,
        port,
        &lockstep::mariadb::ServerOptions {
            args: vec!["--log-bin=binlog".into(), "--server-id=1".into()],
        },
    )
    .expect("the old master restarts");
    // B is the master now: the oracles read it first.
    cluster.nodes.swap(0, 1);
    support::lockstep_sql(&lockstep, "INSERT INTO d.cut VALUES (1), (2)");
    assert_every_node_is_the_master(&cluster, &lockstep, "DDL cut as the master died");
}

/// Jepsen's way: DDL that copies rows (long enough to be cut anywhere:
/// on B, between, on the master) under a writer, lockstep SIGKILLed at a
/// seeded moment, several times; every node ends as the master.
#[test]
fn ddl_cut_at_any_moment_leaves_every_node_as_the_master() {
    use rand::{Rng, SeedableRng};
    let seed = support::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cluster = logging_cluster();
    let mut lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; \
         CREATE TABLE d.big (id INT PRIMARY KEY, v INT NOT NULL, pad CHAR(100) NOT NULL DEFAULT ''); \
         INSERT INTO d.big (id, v) SELECT seq, 0 FROM d.seq_1_to_40000 ORDER BY seq",
    );
    // How long one such DDL takes through lockstep (on B, then on the
    // master): the kills fall within twice that (the tail runs it after).
    let started = Instant::now();
    support::lockstep_sql(&lockstep, "ALTER TABLE d.big FORCE, ALGORITHM=COPY");
    let span = started.elapsed().as_millis() as u64 + 50;
    println!("one DDL takes {span} ms through lockstep");
    let rounds = 6;
    for round in 0..rounds {
        let ddl = if round % 2 == 0 {
            format!("ALTER TABLE d.big ADD COLUMN c{round} INT NOT NULL DEFAULT {round}, ALGORITHM=COPY")
        } else {
            format!(
                "ALTER TABLE d.big DROP COLUMN c{}, ALGORITHM=COPY",
                round - 1
            )
        };
        let port = lockstep.port;
        let writer = std::thread::spawn(move || {
            support::mariadb_cli(
                port,
                USER,
                PASSWORD,
                &["--force"],
                &"UPDATE d.big SET v = v + 1 WHERE id = 7;\n".repeat(200),
            )
        });
        let port = lockstep.port;
        let statement = ddl.clone();
        let runner =
            std::thread::spawn(move || support::mariadb_cli(port, USER, PASSWORD, &[], &statement));
        let delay = rng.gen_range(0..span * 2);
        std::thread::sleep(Duration::from_millis(delay));
        println!("round {round}: {ddl}; killed after {delay} ms");
        lockstep.kill();
        let _ = runner.join();
        let _ = writer.join();
        lockstep.respawn();
        assert_every_node_is_the_master(
            &cluster,
            &lockstep,
            &format!("seed {seed}, round {round}"),
        );
    }
    // Which ends the kills met (numbered, run on the master, dropped).
    for line in lockstep
        .log()
        .lines()
        .filter(|l| l.contains("commits by itself"))
    {
        println!("{line}");
    }
}

/// The tail node ran a DDL but its `lockstep.commits` row failed (as when
/// lockstep stops between the two): the applier, retrying, finds the DDL
/// in the node's binary log and writes only the row. Run again, the DDL
/// would fail ("Table 'later' already exists") and stop the applier for
/// good.
#[test]
fn a_tail_node_that_ran_a_ddl_without_its_row_is_not_made_to_run_it_again() {
    let cluster = logging_cluster();
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; CREATE TABLE d.t (a INT PRIMARY KEY)",
    );
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    let tail = &cluster.nodes[2];
    root_sql(
        tail,
        "CREATE DATABASE side; CREATE TABLE side.fail (x INT); INSERT INTO side.fail VALUES (1);\n\
         DELIMITER //\n\
         CREATE TRIGGER lockstep.refuse_rows BEFORE INSERT ON lockstep.commits FOR EACH ROW \
         IF (SELECT COUNT(*) FROM side.fail) > 0 THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no row now'; END IF//\n",
    );
    support::lockstep_sql(&lockstep, "CREATE TABLE d.later (a INT)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lockstep.log().contains("no row now") {
        assert!(
            Instant::now() < deadline,
            "the tail never failed the row:\n{}",
            lockstep.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!root_rows(tail, "SHOW TABLES FROM d LIKE 'later'").is_empty());
    root_sql(tail, "DELETE FROM side.fail");
    support::wait_for_tail(&cluster, Duration::from_secs(60));
    let log = lockstep.log();
    assert!(
        log.contains("found in the node's binary log"),
        "the applier did not find the DDL in the binary log:\n{log}"
    );
    assert!(!log.contains("already exists"), "the DDL ran twice:\n{log}");
    root_sql(
        tail,
        "DROP TRIGGER lockstep.refuse_rows; DROP DATABASE side",
    );
    assert_every_node_is_the_master(&cluster, &lockstep, "row refused on the tail");
}

/// A serialized text (`BEGIN; INSERT …; COMMIT` in one) is pinned only
/// once B ran it: each INSERT's AUTO_INCREMENT value is B's, journaled
/// before the master runs it. Here the journal refuses that write (a fail
/// point, as a lease that ended does), where the master's and the tail's
/// counters are past B's (an insert each made and lost, as after a
/// crash). The master must not run it (the journal would replay it
/// unpinned: found by `tests/ha.rs`, the tail took other values than the
/// master), and the restart gives the master and every replay the values
/// B logged.
#[test]
fn a_texts_inserts_cut_before_their_pin_take_the_first_nodes_values() {
    cut_before_the_pin(false);
}

/// The same, with B's binary log rotated (`FLUSH BINARY LOGS`) between the
/// place lockstep recorded and the text's run: the values are read on in
/// the next file.
#[test]
fn a_texts_inserts_cut_before_their_pin_are_found_across_a_binlog_rotation() {
    cut_before_the_pin(true);
}

fn cut_before_the_pin(rotate: bool) {
    let cluster = logging_cluster();
    let fail_points = if rotate {
        "serialized-marked=sleep(1500);serialized-text-pin-journaled=return"
    } else {
        "serialized-text-pin-journaled=return"
    };
    let mut lockstep = Lockstep::start_with_fail_points(&cluster, "", None, &[], fail_points);
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE d; \
         CREATE TABLE d.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL); \
         INSERT INTO d.t (v) VALUES (1)",
    );
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    for node in [&cluster.nodes[0], &cluster.nodes[2]] {
        root_sql(
            node,
            "INSERT INTO d.t (v) VALUES (-1), (-1); DELETE FROM d.t WHERE v = -1",
        );
    }
    let text = "BEGIN; INSERT INTO d.t (v) VALUES (2); INSERT INTO d.t (v) VALUES (3), (4); COMMIT";
    let opts = lockstep.client_opts();
    let client = std::thread::spawn(move || {
        support::runtime().block_on(async {
            use mysql_async::prelude::Queryable;
            let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
            conn.query_drop(text).await
        })
    });
    if rotate {
        // Inside the fail point's 1.5 s: marked, not yet run on B.
        std::thread::sleep(Duration::from_millis(500));
        let before = root_rows(&cluster.nodes[1], "SHOW BINARY LOGS").len();
        root_sql(&cluster.nodes[1], "FLUSH BINARY LOGS");
        assert_eq!(
            root_rows(&cluster.nodes[1], "SHOW BINARY LOGS").len(),
            before + 1,
            "B's binary log did not rotate"
        );
    }
    let answer = client.join().expect("client");
    assert!(
        answer.is_err(),
        "the client was told the text committed while the journal refused its values"
    );
    let two = "SELECT id FROM d.t WHERE v = 2";
    assert_eq!(root_rows(&cluster.nodes[1], two), ["2"], "B ran it");
    assert!(
        root_rows(cluster.master(), two).is_empty(),
        "the master ran what the journal did not hold:\n{}",
        lockstep.log()
    );

    lockstep.kill();
    lockstep.respawn();
    let log = lockstep.log();
    assert!(
        log.contains("take the values this node logged"),
        "the restart did not read B's values:\n{log}"
    );
    support::lockstep_sql(&lockstep, "INSERT INTO d.t (v) VALUES (5)");
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    let all = "SELECT id, v FROM d.t ORDER BY id";
    let master = root_rows(cluster.master(), all);
    assert_eq!(
        root_rows(&cluster.nodes[1], all),
        master,
        "B holds other rows than the master"
    );
    assert_eq!(
        root_rows(&cluster.nodes[2], all),
        master,
        "the tail holds other rows than the master"
    );
    assert_eq!(
        root_rows(
            cluster.master(),
            "SELECT id FROM d.t WHERE v IN (2, 3, 4) ORDER BY id"
        ),
        ["2", "3", "4"],
        "the master took its own counter's values, not B's"
    );
    let replayed = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        root_rows(&replayed.nodes[0], all),
        master,
        "the journal replays other rows than the master's"
    );
    support::assert_check_passes(&lockstep);
}

/// A DDL B and the master ran, whose commit number the journal then
/// refuses (a fail point, as a lease that ended does): the client gets the
/// error, and the entry stays unfinished, so the restart numbers it and
/// the tail gets it. (It was marked failed: the tail never got the table
/// the master has; found by `tests/ha.rs`.)
#[test]
fn a_ddl_whose_number_the_journal_refused_reaches_the_tail_after_restart() {
    let cluster = logging_cluster();
    let mut lockstep = Lockstep::start_with_fail_points(
        &cluster,
        "",
        None,
        &[],
        "serialized-numbered=1*off->return",
    );
    // The first serialized statement is numbered; the second is refused its number.
    support::lockstep_sql(&lockstep, "CREATE DATABASE d");
    let refused = support::mariadb_cli(
        lockstep.port,
        USER,
        PASSWORD,
        &[],
        "CREATE TABLE d.t (a INT PRIMARY KEY)",
    );
    assert!(
        !refused.status.success(),
        "the client was told the DDL committed while the journal refused its number"
    );
    let table = "SHOW TABLES FROM d LIKE 't'";
    assert_eq!(
        root_rows(cluster.master(), table),
        ["t"],
        "the master ran it"
    );
    assert_eq!(root_rows(&cluster.nodes[1], table), ["t"], "B ran it");

    lockstep.kill();
    lockstep.respawn();
    support::lockstep_sql(&lockstep, "INSERT INTO d.t VALUES (1), (2)");
    support::wait_for_tail(&cluster, Duration::from_secs(30));
    assert_eq!(
        root_rows(&cluster.nodes[2], table),
        ["t"],
        "the tail never got the DDL the master ran:\n{}",
        lockstep.log()
    );
    assert_every_node_is_the_master(&cluster, &lockstep, "a DDL whose number was refused");
    let replayed = support::replayed_onto_a_fresh_server(&lockstep);
    assert_eq!(
        root_rows(&replayed.nodes[0], "SELECT a FROM d.t ORDER BY a"),
        ["1", "2"],
        "the journal's replay lacks the DDL or its rows"
    );
}
