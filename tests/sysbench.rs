//! sysbench (libmariadb, prepared and unprepared statements) through lockstep:
//! zero errors, and the rows it wrote are well-formed. The published
//! opensrv-mysql read shifted parameters on every prepared re-execute, which
//! sysbench showed as error 1406 or silently wrong rows.

mod support;

use std::process::Command;

use support::{root_sql, Cluster, Lockstep, PASSWORD, USER};

const TABLES: u32 = 2;
const TABLE_SIZE: u32 = 5000;

fn sysbench(lockstep: &Lockstep, command: &str, extra: &[&str]) -> String {
    let out = Command::new("sysbench")
        .arg("oltp_read_write")
        .arg("--db-driver=mysql")
        .arg("--mysql-host=127.0.0.1")
        .arg(format!("--mysql-port={}", lockstep.port))
        .arg(format!("--mysql-user={USER}"))
        .arg(format!("--mysql-password={PASSWORD}"))
        .arg("--mysql-db=sbtest")
        .arg(format!("--tables={TABLES}"))
        .arg(format!("--table-size={TABLE_SIZE}"))
        .args(extra)
        .arg(command)
        .output()
        .expect("run sysbench (is it installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sysbench {command} {extra:?} failed\n{stdout}\n{}\nlockstep log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        lockstep.log()
    );
    stdout
}

/// The number on the line starting with `label` in sysbench's report.
fn stat(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in sysbench report:\n{report}"))
}

#[test]
fn sysbench_read_write_has_no_errors_and_writes_correct_rows() {
    let cluster = Cluster::start(1);
    let master = cluster.master();
    root_sql(master, "CREATE DATABASE sbtest");
    let lockstep = Lockstep::start(&cluster, "");

    sysbench(&lockstep, "prepare", &[]);
    // One thread: nothing can deadlock, so any error at all is lockstep's.
    for mode in ["auto", "disable"] {
        let report = sysbench(
            &lockstep,
            "run",
            &["--threads=1", "--time=6", &format!("--db-ps-mode={mode}")],
        );
        assert!(
            stat(&report, "transactions:") > 0,
            "no transactions:\n{report}"
        );
        assert_eq!(
            stat(&report, "ignored errors:"),
            0,
            "ps-mode={mode}:\n{report}"
        );
        assert_eq!(stat(&report, "reconnects:"), 0, "ps-mode={mode}:\n{report}");
    }
    // Concurrent clients: InnoDB may answer a deadlock (1213) or a lock wait
    // timeout (1205) here exactly as it does without lockstep; sysbench
    // retries those (its default ignore list) and fails on anything else.
    let report = sysbench(&lockstep, "run", &["--threads=4", "--time=6"]);
    assert!(
        stat(&report, "transactions:") > 0,
        "no transactions:\n{report}"
    );
    assert_eq!(stat(&report, "reconnects:"), 0, "{report}");

    // Read the rows back from the master directly. oltp_read_write deletes a
    // row and inserts it again with the same id, so every id is there once,
    // and c and pad keep sysbench's digit-group format; shifted parameters
    // would break either.
    for t in 1..=TABLES {
        let check = root_sql(
            master,
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id), \
                 SUM(c REGEXP '^([0-9]{{11}}-){{9}}[0-9]{{11}}$'), \
                 SUM(pad REGEXP '^([0-9]{{11}}-){{4}}[0-9]{{11}}$') FROM sbtest.sbtest{t}"
            ),
        );
        let values: Vec<&str> = check.lines().nth(1).expect("a row").split('\t').collect();
        let n = TABLE_SIZE.to_string();
        assert_eq!(
            values,
            vec![
                n.as_str(),
                n.as_str(),
                "1",
                n.as_str(),
                n.as_str(),
                n.as_str()
            ],
            "sbtest{t}"
        );
    }
}

#[test]
fn sysbench_through_three_nodes_leaves_identical_tables() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    support::lockstep_sql(&lockstep, "CREATE DATABASE sbtest");

    sysbench(&lockstep, "prepare", &[]);
    let report = sysbench(&lockstep, "run", &["--threads=1", "--time=6"]);
    assert!(
        stat(&report, "transactions:") > 0,
        "no transactions:\n{report}"
    );
    assert_eq!(stat(&report, "ignored errors:"), 0, "{report}");
    let report = sysbench(&lockstep, "run", &["--threads=4", "--time=6"]);
    assert!(
        stat(&report, "transactions:") > 0,
        "no transactions:\n{report}"
    );
    assert_eq!(stat(&report, "reconnects:"), 0, "{report}");

    if std::panic::catch_unwind(|| {
        support::wait_for_tail(&cluster, std::time::Duration::from_secs(60))
    })
    .is_err()
    {
        panic!(
            "the nodes did not catch up; lockstep log:\n{}",
            lockstep.log()
        );
    }
    let tables: Vec<String> = (1..=TABLES)
        .map(|t| format!("sbtest.sbtest{t}"))
        .chain(["lockstep.commits".to_string()])
        .collect();
    let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
    let reference = support::checksums(cluster.master(), &tables);
    for node in &cluster.nodes[1..] {
        assert_eq!(
            support::checksums(node, &tables),
            reference,
            "node on port {}",
            node.port
        );
    }
}
