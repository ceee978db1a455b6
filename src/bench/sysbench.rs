//! One sysbench run and what it printed: throughput, latency percentiles
//! (from `--histogram`), errors.

use std::process::Command;

use serde::{Deserialize, Serialize};

use super::setups::Endpoint;

pub const TABLES: u32 = 4;
pub const TABLE_SIZE: u32 = 10_000;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Run {
    pub tps: f64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

fn base(workload: &str, endpoint: &Endpoint) -> Command {
    let mut cmd = Command::new("sysbench");
    cmd.arg(workload)
        .arg("--db-driver=mysql")
        .arg("--mysql-host=127.0.0.1")
        .arg(format!("--mysql-port={}", endpoint.port))
        .arg(format!("--mysql-user={}", endpoint.user))
        .arg(format!("--mysql-password={}", endpoint.password))
        .arg("--mysql-db=sbtest")
        .arg(format!("--tables={TABLES}"))
        .arg(format!("--table-size={TABLE_SIZE}"))
        // Deadlocks under concurrency are retried, as sysbench users do.
        .arg("--mysql-ignore-errors=1213,1205,1020");
    cmd
}

/// Creates sysbench's tables through `endpoint`.
pub fn prepare(endpoint: &Endpoint) -> Result<(), String> {
    let out = base("oltp_read_write", endpoint)
        .arg("--threads=4")
        .arg("prepare")
        .output()
        .map_err(|e| format!("sysbench: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sysbench prepare: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

pub fn run(workload: &str, threads: u32, seconds: u32, endpoint: &Endpoint) -> Result<Run, String> {
    let out = base(workload, endpoint)
        .arg(format!("--threads={threads}"))
        .arg(format!("--time={seconds}"))
        .arg("--histogram=on")
        .arg("--report-interval=0")
        .arg("run")
        .output()
        .map_err(|e| format!("sysbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "sysbench {workload}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse(&text))
}

fn parse(text: &str) -> Run {
    let per_sec = |label: &str| -> f64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('(').nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    let count = |label: &str| -> u64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let histogram = histogram(text);
    Run {
        tps: per_sec("transactions:"),
        qps: per_sec("queries:"),
        p50_ms: percentile(&histogram, 0.50),
        p95_ms: percentile(&histogram, 0.95),
        p99_ms: percentile(&histogram, 0.99),
        errors: count("ignored errors:"),
    }
}

/// `value | **** count` lines of sysbench's latency histogram.
fn histogram(text: &str) -> Vec<(f64, u64)> {
    text.lines()
        .filter_map(|l| {
            let (value, rest) = l.split_once('|')?;
            let value: f64 = value.trim().parse().ok()?;
            let count: u64 = rest.split_whitespace().last()?.parse().ok()?;
            Some((value, count))
        })
        .collect()
}

fn percentile(histogram: &[(f64, u64)], q: f64) -> f64 {
    let total: u64 = histogram.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return 0.0;
    }
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (value, count) in histogram {
        seen += count;
        if seen >= want {
            return *value;
        }
    }
    histogram.last().map_or(0.0, |(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysbench_output_is_read() {
        let text = "Latency histogram (values are in milliseconds)\n\
            value  ------------- distribution ------------- count\n\
            1.000 |**** 50\n\
            2.000 |**** 45\n\
            9.000 |* 5\n\
            SQL statistics:\n\
            transactions:                        1000   (99.50 per sec.)\n\
            queries:                             4000   (398.00 per sec.)\n\
            ignored errors:                      3      (0.30 per sec.)\n";
        let run = parse(text);
        assert_eq!((run.tps, run.qps, run.errors), (99.5, 398.0, 3));
        assert_eq!((run.p50_ms, run.p95_ms, run.p99_ms), (1.0, 2.0, 9.0));
    }
}
