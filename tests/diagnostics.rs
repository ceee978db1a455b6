//! Warnings and notes reach the client as MariaDB gives them: the same
//! script through lockstep (three nodes) and directly, `SHOW WARNINGS`
//! after each statement, gives the same output (issue "Clients
//! unchanged": DDL notes vanished when lockstep wrote its row after them).

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
}
