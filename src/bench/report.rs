//! The report: Markdown and JSON under `bench/results/`, and one SVG chart
//! per workload with the configurations side by side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Measured, Results, CONFIGS};

/// Writes `<date>-<host>.md`, `.json` and the charts; returns the
/// Markdown's path.
pub fn write(results: &Results, out: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let stem = format!(
        "{}-{}{}",
        &results.machine.date[..10.min(results.machine.date.len())],
        results.machine.host,
        if results.quick { "-quick" } else { "" }
    );
    let json = serde_json::to_string_pretty(results).map_err(std::io::Error::other)?;
    std::fs::write(out.join(format!("{stem}.json")), json)?;
    let mut charts = Vec::new();
    for workload in workloads(results) {
        let name = format!("{stem}-{workload}.svg");
        std::fs::write(out.join(&name), chart(results, &workload))?;
        charts.push((workload, name));
    }
    let md = out.join(format!("{stem}.md"));
    std::fs::write(&md, markdown(results, &charts))?;
    Ok(md)
}

fn workloads(results: &Results) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in &results.measured {
        if !names.contains(&m.workload) {
            names.push(m.workload.clone());
        }
    }
    names
}

fn find<'r>(
    results: &'r Results,
    workload: &str,
    threads: u32,
    config: &str,
) -> Option<&'r Measured> {
    results
        .measured
        .iter()
        .find(|m| m.workload == workload && m.threads == threads && m.config == config)
}

/// The headline number: queries/s for point selects, transactions/s otherwise.
fn headline(m: &Measured) -> f64 {
    if m.workload == "oltp_point_select" {
        m.median.qps
    } else {
        m.median.tps
    }
}

fn unit(workload: &str) -> &'static str {
    if workload == "oltp_point_select" {
        "queries/s"
    } else {
        "transactions/s"
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// lockstep's CPU time per client statement: its share of the machine's
/// cores over the statements per second sysbench counted (reads and
/// writes; its own trips to the nodes and the tail's are in it).
fn cpu_per_statement(l: &Measured, cores: usize) -> String {
    let share = l.lockstep_cpu_share.unwrap_or(0.0);
    if l.median.qps <= 0.0 {
        return "-".into();
    }
    let us = share * cores as f64 * 1e6 / l.median.qps;
    format!("{us:.0} µs")
}

fn markdown(results: &Results, charts: &[(String, String)]) -> String {
    let m = &results.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# lockstep bench — {}{}\n",
        m.date,
        if results.quick { " (quick)" } else { "" }
    );
    let _ = writeln!(
        s,
        "Machine: {} cores, host `{}`, fsync (4 KiB write + fdatasync) p50 {:.3} ms; MariaDB {}; {}. \
         All servers on this machine with `innodb_flush_log_at_trx_commit=1`; sysbench {} tables × {} rows; \
         configurations interleaved round by round, medians of the rounds; run took {} s.\n",
        m.cores, m.host, m.fsync_p50_ms, m.mariadb, m.sysbench,
        super::sysbench::TABLES, super::sysbench::TABLE_SIZE, results.took_s
    );
    let _ = writeln!(s, "Configurations: **direct** one MariaDB; **haproxy** HAProxy (TCP mode) in front of it; \
        **semisync** MariaDB primary + one replica, binlog with `sync_binlog=1`, semi-sync `AFTER_SYNC` (2 servers); \
        **semisync-2** the same with two replicas, a commit waiting for either one's acknowledgement (3 servers, as many as lockstep); \
        **galera** a three-node Galera cluster (galera-4), clients on its first node, every commit certified by the cluster (3 servers); \
        **lockstep** lockstep in front of a master, a synchronous slave and a tail node (journal fsync'd per write); \
        **lockstep-2** lockstep in front of a master and a synchronous slave, no tail (2 servers, as many as semisync); \
        **lockstep-ha** the same as lockstep with a standby instance over etcd (`[ha]`: each commit also waits for the standby's copy of its journal records).\n");
    if let Some(binary) = &results.baseline {
        let _ = writeln!(
            s,
            "**lockstep-baseline**: an earlier build (`{binary}`), set up as lockstep, measured in the same rounds: lockstep / lockstep-baseline is the change's effect.\n"
        );
    }
    let mut threads_seen: Vec<(String, u32)> = Vec::new();
    for x in &results.measured {
        if !threads_seen.contains(&(x.workload.clone(), x.threads)) {
            threads_seen.push((x.workload.clone(), x.threads));
        }
    }
    for (workload, threads) in &threads_seen {
        let _ = writeln!(s, "## {workload}, {threads} threads ({})\n", unit(workload));
        let _ = writeln!(
            s,
            "| config | tps | qps | p50 ms | p95 ms | p99 ms | errors |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for config in CONFIGS {
            if let Some(x) = find(results, workload, *threads, config) {
                let r = &x.median;
                let _ = writeln!(
                    s,
                    "| {config} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                    r.tps, r.qps, r.p50_ms, r.p95_ms, r.p99_ms, r.errors
                );
            }
        }
        if let Some(l) = find(results, workload, *threads, "lockstep") {
            let other = |c: &str| find(results, workload, *threads, c).map_or(0.0, headline);
            let p95 =
                |c: &str| find(results, workload, *threads, c).map_or(0.0, |x| x.median.p95_ms);
            let _ = writeln!(
                s,
                "\nRatios (lockstep / other, {}): direct {}, haproxy {}, semisync {}, semisync-2 {}, galera {}; p95 latency lockstep / semisync {}, / semisync-2 {}, / galera {}.",
                unit(workload),
                ratio(headline(l), other("direct")),
                ratio(headline(l), other("haproxy")),
                ratio(headline(l), other("semisync")),
                ratio(headline(l), other("semisync-2")),
                ratio(headline(l), other("galera")),
                ratio(l.median.p95_ms, p95("semisync")),
                ratio(l.median.p95_ms, p95("semisync-2")),
                ratio(l.median.p95_ms, p95("galera")),
            );
            let _ = writeln!(
                s,
                "lockstep: {:.0}% of the machine's CPU ({} of its CPU per client statement), journal batch {:.1} writes on average, tail lag p99 {}.\n",
                l.lockstep_cpu_share.unwrap_or(0.0) * 100.0,
                cpu_per_statement(l, m.cores),
                l.journal_batch.unwrap_or(0.0),
                l.tail_lag_p99_s.map_or("-".into(), |v| format!("{v:.3} s"))
            );
            if let Some(two) = find(results, workload, *threads, "lockstep-2") {
                let _ = writeln!(
                    s,
                    "lockstep with two nodes / semisync (2 servers each): {}, p95 {}.\n",
                    ratio(headline(two), other("semisync")),
                    ratio(two.median.p95_ms, p95("semisync")),
                );
            }
            if let Some(base) = find(results, workload, *threads, super::BASELINE) {
                let _ = writeln!(
                    s,
                    "lockstep / lockstep-baseline (the change's effect): {}, p95 {}, p50 {}.\n",
                    ratio(headline(l), headline(base)),
                    ratio(l.median.p95_ms, base.median.p95_ms),
                    ratio(l.median.p50_ms, base.median.p50_ms),
                );
            }
            if let Some(ha) = find(results, workload, *threads, "lockstep-ha") {
                let _ = writeln!(
                    s,
                    "lockstep with a standby / lockstep alone: {}, p95 {}.\n",
                    ratio(headline(ha), headline(l)),
                    ratio(ha.median.p95_ms, l.median.p95_ms),
                );
            }
            if let Some(line) = phases_line(l, *threads) {
                let _ = writeln!(s, "{line}\n");
            }
        }
    }
    let _ = writeln!(
        s,
        "lockstep's peak RSS over the run: {} MiB.\n",
        results.lockstep_peak_rss_kib / 1024
    );
    if let Some(c) = &results.catch_up {
        let _ = writeln!(
            s,
            "## Tail catch-up\n\nThe tail node stopped (SIGSTOP) during one `oltp_write_only` run at 8 threads through lockstep ({:.0} commits/s), then let go with no load: it lacked {} commits and had them all {:.2} s later, {:.0} commits/s, {:.1}× the rate they were written at.\n",
            c.write_rate,
            c.missed_commits,
            c.catch_up_s,
            c.apply_rate,
            c.apply_rate / c.write_rate.max(1.0),
        );
    }
    let _ = writeln!(s, "## Targets\n");
    for line in targets(results) {
        let _ = writeln!(s, "- {line}");
    }
    let _ = writeln!(
        s,
        "\n## Journal micro-benchmark (durable writes, group commit, real fsync)\n"
    );
    let _ = writeln!(s, "| writers | entries/s | wait p50 ms | wait p99 ms |");
    let _ = writeln!(s, "|---|---|---|---|");
    for j in &results.journal {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.3} | {:.3} |",
            j.writers, j.entries_per_sec, j.p50_ms, j.p99_ms
        );
    }
    let _ = writeln!(s, "\n## Charts\n");
    for (workload, file) in charts {
        let _ = writeln!(s, "![{workload}]({file})");
    }
    s
}

/// Where a lockstep transaction's time went: the write protocol's phases
/// (`write::Phase`), each in ms per sysbench transaction, against the
/// client's mean latency (threads / tps); the rest is lockstep's own work
/// between phases, reads, the network and sysbench.
fn phases_line(l: &Measured, threads: u32) -> Option<String> {
    let spent: f64 = l.phase_ms_per_txn.iter().map(|(_, ms)| ms).sum();
    if l.median.tps <= 0.0 || spent <= 0.0 {
        return None;
    }
    let latency_ms = f64::from(threads) / l.median.tps * 1000.0;
    let phases: Vec<String> = l
        .phase_ms_per_txn
        .iter()
        .filter(|(_, ms)| *ms >= 0.005)
        .map(|(phase, ms)| format!("{phase} {ms:.2}"))
        .collect();
    Some(format!(
        "lockstep, where a transaction's {latency_ms:.2} ms (mean, threads / tps) went, in ms: {}; the rest {:.2} (lockstep between phases, reads, the network, sysbench).",
        phases.join(", "),
        latency_ms - spent
    ))
}

/// The targets, each with its verdict and by how much.
fn targets(results: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    let threads = |w: &str| {
        results
            .measured
            .iter()
            .filter(|m| m.workload == w)
            .map(|m| m.threads)
            .max()
    };
    if let Some(t) = threads("oltp_point_select") {
        if let (Some(l), Some(h)) = (
            find(results, "oltp_point_select", t, "lockstep"),
            find(results, "oltp_point_select", t, "haproxy"),
        ) {
            let r = headline(l) / headline(h).max(1.0);
            lines.push(format!(
                "point-select QPS through lockstep ≥ HAProxy's ({t} threads): {} (ratio {r:.2})",
                if r >= 1.0 { "met" } else { "missed" }
            ));
        }
    }
    if let (Some(l), Some(s)) = (
        find(results, "oltp_write_only", 8, "lockstep"),
        find(results, "oltp_write_only", 8, "semisync"),
    ) {
        lines.push(write_target(l, s, "semi-sync's"));
        if let Some(s2) = find(results, "oltp_write_only", 8, "semisync-2") {
            lines.push(write_target(
                l,
                s2,
                "semi-sync's with two replicas (3 servers each)",
            ));
        }
        if let Some(g) = find(results, "oltp_write_only", 8, "galera") {
            lines.push(write_target(l, g, "a three-node Galera cluster's"));
        }
        if let Some(two) = find(results, "oltp_write_only", 8, "lockstep-2") {
            lines.push(format!(
                "two nodes: {}",
                write_target(two, s, "semi-sync's with one replica (2 servers each)")
            ));
        }
        if let Some(lag) = l.tail_lag_p99_s {
            lines.push(format!(
                "tail lag p99 < 1 s during oltp_write_only: {} ({lag:.3} s)",
                if lag < 1.0 { "met" } else { "missed" }
            ));
        }
    }
    if let (Some(l), Some(s), Some(d)) = (
        find(results, "oltp_write_only", 1, "lockstep"),
        find(results, "oltp_write_only", 1, "semisync"),
        find(results, "oltp_write_only", 1, "direct"),
    ) {
        lines.push(one_thread_target(l, s, d));
    }
    if let Some(c) = &results.catch_up {
        let r = c.apply_rate / c.write_rate.max(1.0);
        lines.push(format!(
            "a tail that was down catches up ≥ 3× faster than the writes it missed: {} ({r:.1}×)",
            if r >= 3.0 { "met" } else { "missed" }
        ));
    }
    lines
}

/// The 1-thread latency target, and the protocol's floor: a transaction
/// runs on B and then on A, so about twice what it takes directly.
fn one_thread_target(lockstep: &Measured, semisync: &Measured, direct: &Measured) -> String {
    let p50 = lockstep.median.p50_ms;
    let r = p50 / semisync.median.p50_ms.max(0.001);
    let floor = 2.0 * direct.median.p50_ms;
    format!(
        "oltp_write_only p50 at 1 thread ≤ 2× semi-sync's: {} ({p50:.2} ms against {:.2} ms, {r:.1}×); \
         the floor, each transaction run on B and then on A (twice direct's p50), is {floor:.2} ms: \
         lockstep is at {:.1}× it",
        if r <= 2.0 { "met" } else { "missed" },
        semisync.median.p50_ms,
        p50 / floor.max(0.001)
    )
}

/// The write target against `other`: TPS at least theirs, p95 at most.
fn write_target(lockstep: &Measured, other: &Measured, whose: &str) -> String {
    let r = lockstep.median.tps / other.median.tps.max(1.0);
    let p = lockstep.median.p95_ms / other.median.p95_ms.max(0.001);
    format!(
        "oltp_write_only TPS at 8 threads ≥ {whose}: {} (ratio {r:.2}); p95 ≤ theirs: {} (ratio {p:.2})",
        if r >= 1.0 { "met" } else { "missed" },
        if p <= 1.0 { "met" } else { "missed" }
    )
}

/// Grouped bars: one group per thread count, one bar per configuration.
fn chart(results: &Results, workload: &str) -> String {
    let groups: Vec<u32> = {
        let mut t: Vec<u32> = results
            .measured
            .iter()
            .filter(|m| m.workload == workload)
            .map(|m| m.threads)
            .collect();
        t.dedup();
        t
    };
    // Only the configurations this run measured (the baseline is optional).
    let configs: Vec<&str> = CONFIGS
        .iter()
        .copied()
        .filter(|c| results.measured.iter().any(|m| m.config == *c))
        .collect();
    let values: Vec<Vec<f64>> = groups
        .iter()
        .map(|t| {
            configs
                .iter()
                .map(|c| find(results, workload, *t, c).map_or(0.0, headline))
                .collect()
        })
        .collect();
    let max = values.iter().flatten().copied().fold(1.0, f64::max);
    let colors = [
        "#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#e15759", "#ff9da7", "#b07aa1",
        "#9c755f",
    ];
    let (width, height, top, bottom, left) = (760.0, 380.0, 40.0, 80.0, 70.0);
    let plot_h = height - top - bottom;
    let group_w = (width - left - 20.0) / groups.len().max(1) as f64;
    let bar_w = group_w / (configs.len() as f64 + 1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">{workload} — {} (median)</text>\n",
        unit(workload)
    );
    for (g, (threads, row)) in groups.iter().zip(&values).enumerate() {
        let x0 = left + g as f64 * group_w;
        for (i, value) in row.iter().enumerate() {
            let h = value / max * plot_h;
            let x = x0 + (i as f64 + 0.5) * bar_w;
            let y = top + plot_h - h;
            let _ = writeln!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{value:.0}</text>",
                bar_w * 0.9,
                colors[i % colors.len()],
                x + bar_w * 0.45,
                y - 3.0
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{threads} threads</text>",
            x0 + group_w / 2.0,
            top + plot_h + 18.0
        );
    }
    // The legend in rows of five.
    for (i, config) in configs.iter().enumerate() {
        let x = left + (i % 5) as f64 * 136.0;
        let y = height - 35.0 + (i / 5) as f64 * 20.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{y}\">{config}</text>",
            y - 10.0,
            colors[i % colors.len()],
            x + 16.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
