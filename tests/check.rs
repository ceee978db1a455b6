//! `lockstep check`: every node's data compared at one point, per table and
//! chunk, through a running lockstep and with lockstep stopped; a change
//! made behind lockstep's back is found and named.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{lockstep_bin, root_sql, wait_for_tail, Cluster, Lockstep};

fn check(lockstep: &Lockstep, extra: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = Command::new(lockstep_bin())
        .args(["check", "--config"])
        .arg(&lockstep.config_path)
        .args(["--chunk-rows", "10"])
        .args(extra)
        .output()
        .expect("lockstep check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_the_table_and_chunk_changed_behind_lockstep_running_or_stopped() {
    let cluster = Cluster::start(3);
    let journal = tempfile::tempdir().expect("journal dir");
    let mut lockstep = Lockstep::start_with_journal(&cluster, "", Some(journal.path()));
    let rows: Vec<String> = (1..=25).map(|i| format!("({i}, 'v{i}')")).collect();
    support::lockstep_sql(
        &lockstep,
        &format!(
            "CREATE DATABASE c; \
             CREATE TABLE c.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; \
             CREATE TABLE c.other (id INT PRIMARY KEY) ENGINE=InnoDB; \
             CREATE TABLE c.nokey (v VARCHAR(20)) ENGINE=InnoDB; \
             CREATE TABLE c.named (n INT PRIMARY KEY, k INT) ENGINE=InnoDB; \
             INSERT INTO c.t VALUES {}; INSERT INTO c.other VALUES (1); \
             INSERT INTO c.nokey VALUES (''), (NULL); INSERT INTO c.named VALUES (1, 1);",
            rows.join(", ")
        ),
    );
    wait_for_tail(&cluster, Duration::from_secs(20));

    let (code, out, err) = check(&lockstep, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.contains("running lockstep"), "{err}");
    assert!(out.contains("c.t: identical (25 rows, 3 chunks)"), "{out}");
    // A key column named like check's own aliases once made it fail (4016).
    assert!(out.contains("c.named: identical"), "{out}");
    assert!(out.contains("lockstep.commits: identical"), "{out}");

    // Behind lockstep's back: a value in the second chunk on n2, and on n1
    // an empty string made NULL (a naive concatenation would miss it).
    root_sql(
        &cluster.nodes[2],
        "UPDATE c.t SET v = 'changed' WHERE id = 15",
    );
    root_sql(
        &cluster.nodes[1],
        "UPDATE c.nokey SET v = NULL WHERE v = ''",
    );
    let (code, out, err) = check(&lockstep, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("c.t: DIFFERS on n2"), "{out}");
    assert!(out.contains("c.t chunk id in ['11', '21')"), "{out}");
    assert!(out.contains("c.nokey: DIFFERS on n1"), "{out}");
    assert!(out.contains("c.other: identical"), "{out}");
    let (code, out, _) = check(&lockstep, &["--table", "c.other"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("c.t"), "{out}");

    // The same with lockstep stopped: the nodes are read directly.
    lockstep.stop();
    let (code, out, err) = check(&lockstep, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("not running"), "{err}");
    assert!(out.contains("c.t: DIFFERS on n2"), "{out}");
    let (code, _, err) = check(&lockstep, &["--table", "c.missing"]);
    assert_eq!(code, Some(2), "{err}");
}
