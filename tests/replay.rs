//! `lockstep replay`: a journal applied to a fresh MariaDB gives the
//! master's data; a second replay is a no-op; `--until` stops at the right
//! commit; `--dry-run` prints SQL the `mariadb` client applies with the same
//! result.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{
    checksums, lockstep_bin, mariadb_cli, root_rows, root_sql, wait_for_tail, Cluster, Lockstep,
};

const TABLES: &[&str] = &["r.t", "r.u", "lockstep.commits"];

fn replay(args: &[&str]) -> Output {
    Command::new(lockstep_bin())
        .arg("replay")
        .args(args)
        .output()
        .expect("lockstep replay")
}

fn assert_ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed: {stderr}");
    stderr
}

#[test]
fn a_journal_replayed_onto_fresh_servers_gives_the_masters_data() {
    let cluster = Cluster::start(2);
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, "", Some(journal.path()));
    support::lockstep_sql(
        &lockstep,
        "CREATE DATABASE r; \
         CREATE TABLE r.t (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6), x DOUBLE, u CHAR(36)) ENGINE=InnoDB; \
         CREATE TABLE r.u (k VARCHAR(10) PRIMARY KEY, n INT) ENGINE=InnoDB;",
    );
    for i in 0..5 {
        support::lockstep_sql(
            &lockstep,
            &format!(
                "INSERT INTO r.t (at, x, u) VALUES (NOW(6), RAND(), UUID()); \
                 INSERT INTO r.u VALUES ('k{i}', {i});"
            ),
        );
    }
    // Where --until will stop: after the fifth round of inserts.
    // B carries the numbers (the master's rows do not); it commits right
    // after the client's answer.
    support::wait_for_tail(&cluster, std::time::Duration::from_secs(20));
    let until = root_rows(&cluster.nodes[1], "SELECT MAX(seq) FROM lockstep.commits")[0].clone();
    support::lockstep_sql(
        &lockstep,
        "BEGIN; UPDATE r.u SET n = n * 10; DELETE FROM r.t WHERE id = 2; COMMIT;",
    );
    let out = mariadb_cli(
        lockstep.port,
        "app",
        "secret",
        &[],
        "SET @v = 7;\nPREPARE s FROM 'INSERT INTO r.u VALUES (?, ?)';\nEXECUTE s USING 'p', @v;\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // B commits right after the client's answer: let it.
    wait_for_tail(&cluster, Duration::from_secs(20));
    let master = checksums(cluster.master(), TABLES);
    let fresh = Cluster::start(4);

    // From the running lockstep (it holds its journal: read through it).
    let config = lockstep
        .config_path
        .to_str()
        .expect("utf-8 path")
        .to_string();
    let live = assert_ok(&replay(&[
        "--config",
        &config,
        "--target",
        &fresh.nodes[3].url(),
    ]));
    assert!(live.contains("the running lockstep"), "{live}");
    assert_eq!(checksums(&fresh.nodes[3], TABLES), master, "{live}");

    lockstep.stop();
    let dir = journal.path().to_str().expect("utf-8 path");

    // The whole journal onto an empty server, twice.
    let target = fresh.nodes[0].url();
    let first = assert_ok(&replay(&["--journal", dir, "--target", &target]));
    assert_eq!(checksums(&fresh.nodes[0], TABLES), master, "{first}");
    let second = assert_ok(&replay(&["--journal", dir, "--target", &target]));
    assert!(second.contains("replay: 0 commits applied"), "{second}");
    assert_eq!(checksums(&fresh.nodes[0], TABLES), master);

    // Up to a commit number.
    let partial = fresh.nodes[1].url();
    assert_ok(&replay(&[
        "--journal",
        dir,
        "--target",
        &partial,
        "--until",
        &until,
    ]));
    assert_eq!(
        root_rows(&fresh.nodes[1], "SELECT COUNT(*) FROM r.t"),
        ["5"]
    );
    assert_eq!(root_rows(&fresh.nodes[1], "SELECT SUM(n) FROM r.u"), ["10"]);
    assert_eq!(
        root_rows(&fresh.nodes[1], "SELECT MAX(seq) FROM lockstep.commits"),
        [until.as_str()]
    );

    // As SQL, through the mariadb client.
    let printed = replay(&[
        "--journal",
        dir,
        "--target",
        &fresh.nodes[2].url(),
        "--dry-run",
    ]);
    assert_ok(&printed);
    let sql = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert_eq!(
        root_rows(
            &fresh.nodes[2],
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'r'"
        ),
        ["0"],
        "a dry run sends nothing"
    );
    root_sql(&fresh.nodes[2], &sql);
    assert_eq!(checksums(&fresh.nodes[2], TABLES), master, "{sql}");

    // A journal that is not there is an error, not an empty replay.
    let missing = replay(&["--journal", "/nonexistent/journal", "--target", &target]);
    assert_eq!(missing.status.code(), Some(2));
}
