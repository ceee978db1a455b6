//! The journal's flushes wake one of sled's IO threads, not all of them.
//!
//! sled 0.34 hands each write of its log buffer to a pool of threads (seven
//! idle ones kept) and woke every idle one for each (`notify_all`): per
//! flushed journal batch, seven threads woke and six went back to sleep
//! (the pool was 12 % of lockstep's CPU samples under `oltp_write_only` at
//! 8 threads, perf, 2026-12-03). `vendor/sled` wakes one (`notify_one`, patch 1).
//! Counted here from the kernel's count of each thread's voluntary context
//! switches, in a process of its own (sled's pool is global).

use std::fs;

/// Voluntary context switches of this process's `sled-io-*` threads.
fn sled_io_switches() -> (usize, u64) {
    let mut threads = 0;
    let mut switches = 0;
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        panic!("no /proc/self/task: this test needs Linux");
    };
    for task in tasks.flatten() {
        let name = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.starts_with("sled-io") {
            continue;
        }
        threads += 1;
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    (threads, switches)
}

#[test]
fn a_flush_wakes_one_sled_io_thread() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::open(dir.path()).expect("open sled");
    // Start the pool and let its threads settle into their wait.
    db.insert(b"warm", b"up".to_vec()).expect("insert");
    db.flush().expect("flush");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (threads, before) = sled_io_switches();
    assert!(threads >= 2, "sled's IO pool has {threads} threads");
    const FLUSHES: u64 = 200;
    for i in 0..FLUSHES {
        db.insert(i.to_be_bytes(), vec![7u8; 200]).expect("insert");
        db.flush().expect("flush");
    }
    let (_, after) = sled_io_switches();
    let per_flush = (after - before) as f64 / FLUSHES as f64;
    println!("{threads} sled-io threads; {per_flush:.2} wake-ups per flush");
    // One thread wakes to write and may sleep once more on the disk; every
    // idle thread woke for each before.
    assert!(
        per_flush < 3.0,
        "{per_flush:.2} sled-io wake-ups per flush with {threads} threads"
    );
}
