//! The journal's disk fills up: lockstep refuses writes with a clear error
//! (1026, the statement committed nowhere) and keeps serving reads; it
//! never acknowledges a write it could not journal.
//!
//! The journal lives on a small tmpfs of its own, which needs root (CI runs
//! as root; elsewhere the test says it was skipped).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use support::{root_rows, runtime, Cluster, Lockstep};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Two nodes and lockstep with its journal on a small tmpfs, table `d.t`
/// created (and `then` run), and the disk filled. None without root.
fn full_journal_disk(then: &str) -> Option<(SmallDisk, Cluster, Lockstep)> {
    let Some(disk) = SmallDisk::mount("32m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return None;
    };
    let cluster = Cluster::start(2);
    let journal = disk.path().join("journal");
    let lockstep = Lockstep::start_with_journal(&cluster, "", Some(&journal));
    support::lockstep_sql(
        &lockstep,
        &format!("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY) ENGINE=InnoDB; {then}"),
    );
    disk.fill();
    Some((disk, cluster, lockstep))
}

/// Neither the refused row nor the one written after it is on any node.
fn assert_nowhere(cluster: &Cluster, refused_id: i32) {
    for node in &cluster.nodes {
        let rows = root_rows(
            node,
            &format!("SELECT id FROM d.t WHERE id IN ({refused_id}, 100000)"),
        );
        assert!(
            rows.is_empty(),
            "port {}: a refused write is there: {rows:?}",
            node.port
        );
    }
}

#[test]
fn a_full_journal_disk_refuses_writes_and_reads_go_on() {
    let Some((_disk, cluster, lockstep)) = full_journal_disk("INSERT INTO d.t VALUES (1);") else {
        return;
    };
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        // sled may still have room in what it allocated: write until the
        // disk says no, counting what was acknowledged.
        let mut acknowledged = vec![1];
        let mut refused = None;
        for id in 2..2000 {
            match c.query_drop(format!("INSERT INTO d.t VALUES ({id})")).await {
                Ok(()) => acknowledged.push(id),
                Err(mysql_async::Error::Server(e)) => {
                    refused = Some((id, e));
                    break;
                }
                Err(e) => panic!("not a server error: {e}"),
            }
        }
        let (refused_id, err) = refused.expect("a full disk never refused a write");
        assert_eq!(err.code, 1026, "{err:?}");
        assert!(err.message.contains("journal"), "{err:?}");
        // Refused from now on, and reads go on.
        let again = c.query_drop("INSERT INTO d.t VALUES (100000)").await;
        assert!(
            matches!(&again, Err(mysql_async::Error::Server(e)) if e.code == 1026),
            "{again:?}"
        );
        let count: Option<usize> = c
            .query_first("SELECT COUNT(*) FROM d.t")
            .await
            .expect("a read");
        assert_eq!(count, Some(acknowledged.len()));
        assert_nowhere(&cluster, refused_id);
    });
}

/// Inside a transaction the statements are journaled without a flush, so the
/// first write the full disk refuses is a COMMIT: the transaction is rolled
/// back on every node, the session is left outside any transaction, and
/// every write after it is refused before it runs.
#[test]
fn a_commit_that_cannot_be_journaled_is_rolled_back_everywhere() {
    let Some((_disk, cluster, lockstep)) = full_journal_disk("") else {
        return;
    };
    runtime().block_on(async {
        let mut c = Conn::new(lockstep.client_opts()).await.expect("connect");
        let mut acknowledged = 0;
        let mut refused = None;
        for id in 1..2000 {
            c.query_drop("BEGIN").await.expect("begin");
            let insert = c.query_drop(format!("INSERT INTO d.t VALUES ({id})")).await;
            assert!(insert.is_ok(), "the first refusal is a COMMIT: {insert:?}");
            match c.query_drop("COMMIT").await {
                Ok(()) => acknowledged += 1,
                Err(mysql_async::Error::Server(e)) => {
                    refused = Some((id, e));
                    break;
                }
                Err(e) => panic!("not a server error: {e}"),
            }
        }
        let (refused_id, err) = refused.expect("a full disk never refused a commit");
        assert_eq!(err.code, 1026, "{err:?}");
        let in_transaction: Option<u8> = c
            .query_first("SELECT @@in_transaction")
            .await
            .expect("a read");
        assert_eq!(
            in_transaction,
            Some(0),
            "the session is left in a transaction"
        );
        // Refused up front from now on, inside a transaction too.
        c.query_drop("BEGIN").await.expect("begin");
        let again = c.query_drop("INSERT INTO d.t VALUES (100000)").await;
        assert!(
            matches!(&again, Err(mysql_async::Error::Server(e)) if e.code == 1026),
            "{again:?}"
        );
        let _ = c.query_drop("ROLLBACK").await;
        let count: Option<usize> = c
            .query_first("SELECT COUNT(*) FROM d.t")
            .await
            .expect("a read");
        assert_eq!(count, Some(acknowledged));
        assert_nowhere(&cluster, refused_id);
    });
}
