//! Warnings and notes reach the client as MariaDB gives them: the same
//! script through lockstep (three nodes) and directly, `SHOW WARNINGS`
//! after each statement, gives the same output (issue "Clients
//! unchanged": DDL notes vanished when lockstep wrote its row after them).
//! So does ROW_COUNT(), which lockstep's own COMMIT after a write had made
//! 0 on the master, and the rows written with it are the same everywhere.

mod support;

use support::{mariadb_cli, Cluster, Lockstep, PASSWORD, USER};

const SCRIPT: &str = "\
CREATE DATABASE diag;
USE diag;
DROP TABLE IF EXISTS missing;
SHOW WARNINGS;
CREATE TABLE t (a SET('', 'x'), y INT) ENGINE=InnoDB;
SHOW WARNINGS;
CREATE TABLE IF NOT EXISTS t (a INT);
SHOW WARNINGS;
CREATE VIEW v AS SELECT * FROM t;
CREATE VIEW IF NOT EXISTS v AS SELECT 1;
SHOW WARNINGS;
DROP VIEW IF EXISTS nov;
SHOW WARNINGS;
CREATE INDEX i ON t (y);
CREATE INDEX i2 ON t (y);
SHOW WARNINGS;
ALTER TABLE t DROP INDEX IF EXISTS nothere;
SHOW WARNINGS;
CREATE TABLE m (b TINYINT) ENGINE=MyISAM;
INSERT INTO m VALUES (1000), (-1000);
SHOW WARNINGS;
INSERT INTO t (y) VALUES ('12abc');
SHOW WARNINGS;
UPDATE t SET y = y / 0;
SHOW WARNINGS;
DROP PROCEDURE IF EXISTS nop;
SHOW WARNINGS;
CREATE TABLE r1 (a INT) ENGINE=InnoDB;
CREATE TABLE r2 (a INT) ENGINE=InnoDB;
INSERT INTO r1 VALUES (1), (2);
INSERT INTO r2 VALUES (1), (2), (3);
SELECT ROW_COUNT();
DELETE r1, r2 FROM r1, r2 WHERE r1.a = r2.a;
SELECT ROW_COUNT();
UPDATE r2 SET a = 7;
SELECT ROW_COUNT() AS rc, ROW_COUNT() + 1 AS next;
INSERT INTO r1 VALUES (ROW_COUNT());
BEGIN;
INSERT INTO r1 VALUES (3), (4);
SELECT ROW_COUNT();
INSERT INTO r1 SELECT ROW_COUNT();
INSERT INTO r1 SELECT ROW_COUNT();
COMMIT;
SELECT ROW_COUNT();
SELECT a FROM r1 ORDER BY a;
SET sql_mode = '';
BEGIN;
INSERT INTO r1 VALUES ('5x'), (99999999999);
COMMIT;
SHOW WARNINGS;
SHOW ERRORS;
SHOW WARNINGS;
SELECT 1;
SHOW WARNINGS;
BEGIN;
INSERT INTO r1 VALUES ('6y');
ROLLBACK;
SHOW WARNINGS;
";

fn output(port: u16, user: &str, password: &str) -> String {
    let out = mariadb_cli(port, user, password, &["--table", "--force"], SCRIPT);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn warnings_and_notes_are_those_mariadb_gives_directly() {
    let direct = Cluster::start(1);
    let expected = output(direct.nodes[0].port, "root", "");
    assert!(
        expected.contains("1050"),
        "the script makes notes: {expected}"
    );
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    let got = output(lockstep.port, USER, PASSWORD);
    assert_eq!(got, expected, "through lockstep vs directly");
    support::wait_for_tail(&cluster, std::time::Duration::from_secs(20));
    let master = support::root_rows(cluster.master(), "SELECT a FROM diag.r1 ORDER BY a");
    assert_eq!(master.len(), 7, "{master:?}");
    for node in &cluster.nodes {
        assert_eq!(
            support::root_rows(node, "SELECT a FROM diag.r1 ORDER BY a"),
            master,
            "port {}",
            node.port
        );
    }
}

/// A database whose name is not ASCII, used by clients with different
/// character sets (MariaDB's `query_cache_innodb` test stopped the tail on
/// "Unknown database 'testdatabase$ї'"): every node, the tail included,
/// gets the rows.
#[test]
fn a_database_named_outside_ascii_reaches_every_node_whatever_the_clients_charset() {
    let cluster = Cluster::start(3);
    let lockstep = Lockstep::start(&cluster, "");
    // The session's character set changes before and after its USE.
    let cases = [
        (
            "latin1",
            "SET NAMES utf8mb4;",
            "testdatabase$ї",
            "SET NAMES latin1;",
        ),
        (
            "utf8mb4",
            "SET NAMES latin1;",
            "données",
            "SET NAMES utf8mb4;",
        ),
        ("latin1", "", "base_ї", "SET NAMES utf8mb4;"),
    ];
    for (charset, before, db, after) in cases {
        let sql = format!(
            "{before} CREATE DATABASE `{db}`; USE `{db}`; \
             CREATE TABLE t (a INT) ENGINE=InnoDB; INSERT INTO t VALUES (1), (2); \
             {after} INSERT INTO t VALUES (3);"
        );
        let out = mariadb_cli(
            lockstep.port,
            USER,
            PASSWORD,
            &[&format!("--default-character-set={charset}")],
            &sql,
        );
        assert!(
            out.status.success(),
            "{charset}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    support::wait_for_tail(&cluster, std::time::Duration::from_secs(20));
    let sums = |node| {
        support::root_rows(
            node,
            "SELECT HEX(TABLE_SCHEMA), TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_NAME = 't' ORDER BY 1",
        )
    };
    let master = sums(cluster.master());
    assert_eq!(master.len(), cases.len(), "{master:?}");
    for node in &cluster.nodes {
        assert_eq!(sums(node), master, "port {}", node.port);
    }
}
