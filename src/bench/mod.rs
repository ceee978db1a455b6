//! `lockstep bench` (run by `bench/run`): lockstep against one MariaDB
//! (direct), HAProxy in TCP mode, and MariaDB semi-sync replication, side
//! by side in one run on one machine, interleaved round by round, medians
//! reported. Plus a journal micro-benchmark. See issue "Bench harness".

mod journal;
mod report;
mod setups;
mod sysbench;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::info;

use setups::{
    Direct, Endpoint, Galera, Haproxy, Lockstep, LockstepHa, LockstepSetup, Semisync, SetupError,
};
use sysbench::Run;

pub use report::write as write_report;

/// The configurations, in the order each round runs them (the last only
/// with `Plan::baseline`).
pub const CONFIGS: [&str; 9] = [
    "direct",
    "haproxy",
    "semisync",
    "semisync-2",
    "galera",
    "lockstep",
    "lockstep-2",
    "lockstep-ha",
    BASELINE,
];

/// An earlier lockstep build, run as `lockstep` is (three nodes).
pub const BASELINE: &str = "lockstep-baseline";

#[derive(Debug, Clone)]
pub struct Plan {
    pub workloads: Vec<(&'static str, u32)>,
    pub seconds: u32,
    pub rounds: usize,
    pub journal_seconds: u64,
    /// Another lockstep binary, measured beside this one (an A/B run).
    pub baseline: Option<PathBuf>,
}

impl Plan {
    pub fn quick() -> Plan {
        Plan {
            workloads: vec![
                ("oltp_point_select", 8),
                ("oltp_write_only", 1),
                ("oltp_write_only", 8),
            ],
            seconds: 8,
            rounds: 3,
            journal_seconds: 2,
            baseline: None,
        }
    }

    pub fn full() -> Plan {
        let mut workloads = Vec::new();
        for workload in [
            "oltp_point_select",
            "oltp_read_write",
            "oltp_write_only",
            "oltp_insert",
        ] {
            for threads in [1, 8] {
                workloads.push((workload, threads));
            }
        }
        // The write workloads the targets name, at 32 threads too.
        workloads.push(("oltp_read_write", 32));
        workloads.push(("oltp_write_only", 32));
        Plan {
            workloads,
            seconds: 18,
            rounds: 3,
            journal_seconds: 5,
            baseline: None,
        }
    }
}

/// One configuration's runs of one workload, and what lockstep used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub workload: String,
    pub threads: u32,
    pub config: String,
    pub runs: Vec<Run>,
    pub median: Run,
    /// lockstep only: its share of the machine's CPU during its runs.
    pub lockstep_cpu_share: Option<f64>,
    /// lockstep only: the tail node's lag p99, in seconds (from commits
    /// behind and the run's commit rate).
    pub tail_lag_p99_s: Option<f64>,
    /// lockstep only: mean journal group-commit batch size.
    pub journal_batch: Option<f64>,
    /// lockstep only: where a transaction's time went, in ms per sysbench
    /// transaction, by phase of the write protocol (medians of the rounds).
    pub phase_ms_per_txn: Vec<(String, f64)>,
}

/// One sysbench run through lockstep and what lockstep reported around it.
struct LockstepRun {
    run: Run,
    cpu_share: f64,
    lags_s: Vec<f64>,
    batch: f64,
    phase_ms_per_txn: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub host: String,
    pub fsync_p50_ms: f64,
    pub mariadb: String,
    pub sysbench: String,
    pub date: String,
}

/// lockstep's tail node stopped (SIGSTOP) for one `oltp_write_only` run
/// at 8 threads, then let go with no load: how fast it applies what it
/// missed, against the rate it was written at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchUp {
    /// Commits the tail lacked when it was let go.
    pub missed_commits: u64,
    /// The run's commits per second (one per sysbench transaction).
    pub write_rate: f64,
    /// From SIGCONT until the tail had every commit.
    pub catch_up_s: f64,
    /// missed_commits / catch_up_s.
    pub apply_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub quick: bool,
    pub machine: Machine,
    pub measured: Vec<Measured>,
    pub catch_up: Option<CatchUp>,
    pub journal: Vec<journal::JournalRun>,
    pub lockstep_peak_rss_kib: u64,
    pub took_s: u64,
    /// The earlier lockstep binary measured as `lockstep-baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Run(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Sets everything up, measures, and returns the results.
pub async fn run(plan: Plan, quick: bool, work: &Path) -> Result<Results, BenchError> {
    let started = Instant::now();
    let dir = work.to_path_buf();
    let plan_for_sysbench = plan.clone();
    let baseline = plan.baseline.as_ref().map(|b| b.display().to_string());
    let (machine, measured, catch_up, rss) =
        tokio::task::spawn_blocking(move || measure_configs(&plan_for_sysbench, &dir))
            .await
            .map_err(|e| BenchError::Run(e.to_string()))??;
    info!("journal micro-benchmark");
    let journal = journal::run(work, plan.journal_seconds)
        .await
        .map_err(BenchError::Run)?;
    Ok(Results {
        quick,
        machine,
        measured,
        catch_up,
        journal,
        lockstep_peak_rss_kib: rss,
        took_s: started.elapsed().as_secs(),
        baseline,
    })
}

type Measurements = (Machine, Vec<Measured>, Option<CatchUp>, u64);

fn measure_configs(plan: &Plan, dir: &Path) -> Result<Measurements, BenchError> {
    info!("starting the servers");
    let direct = Direct::start(dir)?;
    let haproxy = Haproxy::start(dir, direct.server.port)?;
    let semisync = Semisync::start(dir, "semisync", 1)?;
    let semisync_two = Semisync::start(dir, "semisync-2", 2)?;
    let galera = Galera::start(dir)?;
    let lockstep = Lockstep::start(dir, lockstep_setup("lockstep", 3, None))?;
    let lockstep_two = Lockstep::start(dir, lockstep_setup("lockstep-2", 2, None))?;
    let lockstep_ha = LockstepHa::start(dir)?;
    let baseline = match &plan.baseline {
        Some(binary) => Some(Lockstep::start(
            dir,
            lockstep_setup(BASELINE, 3, Some(binary)),
        )?),
        None => None,
    };
    let mut configs = vec![
        ("direct", direct.endpoint()),
        ("haproxy", haproxy.endpoint()),
        ("semisync", semisync.endpoint()),
        ("semisync-2", semisync_two.endpoint()),
        ("galera", galera.endpoint()),
        ("lockstep", lockstep.endpoint()),
        ("lockstep-2", lockstep_two.endpoint()),
        ("lockstep-ha", lockstep_ha.endpoint()),
    ];
    if let Some(baseline) = &baseline {
        configs.push((BASELINE, baseline.endpoint()));
    }
    // Direct and HAProxy share one server: one set of tables.
    let haproxy_port = haproxy.endpoint().port;
    for (_, endpoint) in configs.iter().filter(|(_, e)| e.port != haproxy_port) {
        info!(port = endpoint.port, "sysbench prepare");
        create_database(endpoint)?;
        sysbench::prepare(endpoint).map_err(BenchError::Run)?;
    }
    let machine = machine(dir, direct.server.port)?;
    let mut measured = Vec::new();
    for (workload, threads) in &plan.workloads {
        let mut per_config: Vec<Measured> = configs
            .iter()
            .map(|(config, _)| Measured {
                workload: workload.to_string(),
                threads: *threads,
                config: config.to_string(),
                runs: Vec::new(),
                median: Run::default(),
                lockstep_cpu_share: None,
                tail_lag_p99_s: None,
                journal_batch: None,
                phase_ms_per_txn: Vec::new(),
            })
            .collect();
        let mut cpu = Vec::new();
        let mut lags = Vec::new();
        let mut batches = Vec::new();
        let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for round in 0..plan.rounds {
            for (i, (config, endpoint)) in configs.iter().enumerate() {
                info!(workload, threads, config, round, "run");
                if *config == "lockstep" {
                    let measured =
                        lockstep_run(&lockstep, workload, *threads, plan.seconds, endpoint)?;
                    cpu.push(measured.cpu_share);
                    lags.extend(measured.lags_s);
                    batches.push(measured.batch);
                    for (phase, ms) in measured.phase_ms_per_txn {
                        phases.entry(phase).or_default().push(ms);
                    }
                    per_config[i].runs.push(measured.run);
                } else {
                    let run = sysbench::run(workload, *threads, plan.seconds, endpoint)
                        .map_err(BenchError::Run)?;
                    per_config[i].runs.push(run);
                }
            }
        }
        for m in &mut per_config {
            m.median = median_run(&m.runs);
            if m.config == "lockstep" {
                m.lockstep_cpu_share = Some(median(&mut cpu.clone()));
                m.tail_lag_p99_s = (!lags.is_empty()).then(|| percentile(&mut lags.clone(), 0.99));
                m.journal_batch = Some(median(&mut batches.clone()));
                m.phase_ms_per_txn = phases
                    .iter()
                    .map(|(phase, ms)| (phase.clone(), median(&mut ms.clone())))
                    .collect();
            }
        }
        measured.extend(per_config);
    }
    let catch_up = if plan.workloads.contains(&("oltp_write_only", 8)) {
        info!("tail catch-up");
        catch_up_run(&lockstep, plan.seconds, &lockstep.endpoint())?
    } else {
        None
    };
    let rss = peak_rss_kib(lockstep.pid());
    drop(baseline);
    drop(lockstep_ha);
    drop(lockstep_two);
    drop(lockstep);
    drop(semisync_two);
    drop(semisync);
    drop(haproxy);
    drop(direct);
    Ok((machine, measured, catch_up, rss))
}

fn lockstep_setup<'a>(name: &'a str, nodes: usize, binary: Option<&'a Path>) -> LockstepSetup<'a> {
    LockstepSetup {
        name,
        nodes,
        binary,
    }
}

/// Longest wait for a let-go tail to have every commit.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(180);

/// Stops the tail node for an `oltp_write_only` run at 8 threads, lets it
/// go, and times how long it takes to have every commit (None: it had no
/// node process to stop, or never caught up within `CATCH_UP_LIMIT`).
fn catch_up_run(
    lockstep: &Lockstep,
    seconds: u32,
    endpoint: &Endpoint,
) -> Result<Option<CatchUp>, BenchError> {
    let Some(tail) = lockstep.tail_pid() else {
        return Ok(None);
    };
    let signal = |sig| {
        // SAFETY: kill has no memory preconditions; the pid is a node
        // process this harness started and still owns.
        unsafe { libc::kill(tail as libc::pid_t, sig) }
    };
    signal(libc::SIGSTOP);
    let run = sysbench::run("oltp_write_only", 8, seconds, endpoint);
    let missed = tail_lag_commits(lockstep.admin_port);
    signal(libc::SIGCONT);
    let released = Instant::now();
    let run = run.map_err(BenchError::Run)?;
    let Some(missed) = missed else {
        return Ok(None);
    };
    loop {
        if tail_lag_commits(lockstep.admin_port) == Some(0) {
            break;
        }
        if released.elapsed() > CATCH_UP_LIMIT {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let catch_up_s = released.elapsed().as_secs_f64();
    Ok(Some(CatchUp {
        missed_commits: missed,
        write_rate: run.tps,
        catch_up_s,
        apply_rate: missed as f64 / catch_up_s.max(1e-3),
    }))
}

/// A sysbench run through lockstep, sampling the tail's lag and reading
/// lockstep's CPU time, journal batches and write phases around it.
fn lockstep_run(
    lockstep: &Lockstep,
    workload: &str,
    threads: u32,
    seconds: u32,
    endpoint: &Endpoint,
) -> Result<LockstepRun, BenchError> {
    let ticks_before = cpu_ticks(lockstep.pid());
    let batch_before = batch_sum_count(lockstep.admin_port);
    let phases_before = phase_sums(lockstep.admin_port);
    let started = Instant::now();
    let admin = lockstep.admin_port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut lags = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(lag) = tail_lag_commits(admin) {
                    lags.push(lag);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            lags
        })
    };
    let run = sysbench::run(workload, threads, seconds, endpoint);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lags = sampler.join().unwrap_or_default();
    let run = run.map_err(BenchError::Run)?;
    let wall = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(lockstep.pid()).saturating_sub(ticks_before);
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let share = ticks as f64 / per_sec / wall / cores;
    let commit_rate = run.tps.max(1.0);
    let lag_s = lags.iter().map(|c| *c as f64 / commit_rate).collect();
    let batch_after = batch_sum_count(lockstep.admin_port);
    let batch = match (batch_before, batch_after) {
        (Some((s0, c0)), Some((s1, c1))) if c1 > c0 => (s1 - s0) / (c1 - c0),
        _ => 0.0,
    };
    let transactions = (run.tps * f64::from(seconds)).max(1.0);
    let phase_ms_per_txn = phase_sums(lockstep.admin_port)
        .into_iter()
        .map(|(phase, after)| {
            let before = phases_before.get(&phase).copied().unwrap_or(0.0);
            (phase, (after - before) * 1000.0 / transactions)
        })
        .collect();
    Ok(LockstepRun {
        run,
        cpu_share: share,
        lags_s: lag_s,
        batch,
        phase_ms_per_txn,
    })
}

/// `lockstep_write_phase_seconds_sum` by phase, from `/metrics` (empty
/// when lockstep cannot be asked).
fn phase_sums(admin: u16) -> BTreeMap<String, f64> {
    metrics_text(admin)
        .map(|text| phase_sums_of(&text))
        .unwrap_or_default()
}

fn phase_sums_of(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("lockstep_write_phase_seconds_sum{phase=\"")?;
            let (phase, value) = rest.split_once("\"}")?;
            Some((phase.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn metrics_text(admin: u16) -> Option<String> {
    ureq::get(&format!("http://127.0.0.1:{admin}/metrics"))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_string()
        .ok()
}

fn create_database(endpoint: &Endpoint) -> Result<(), BenchError> {
    let out = std::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1"])
        .arg(format!("-P{}", endpoint.port))
        .arg(format!("-u{}", endpoint.user))
        .arg(format!("--password={}", endpoint.password))
        .args(["-e", "CREATE DATABASE IF NOT EXISTS sbtest"])
        .output()
        .map_err(|source| BenchError::Io {
            what: "mariadb".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(BenchError::Run(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat: 11 and 12 after ')'.
    field(11) + field(12)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The tail node's commits behind, from lockstep's `/status`.
fn tail_lag_commits(admin: u16) -> Option<u64> {
    let text = ureq::get(&format!("http://127.0.0.1:{admin}/status"))
        .timeout(Duration::from_secs(1))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let status: serde_json::Value = serde_json::from_str(&text).ok()?;
    let last = status["last_seq"].as_u64()?;
    let tail = status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == "c")?;
    Some(last.saturating_sub(tail["applied_seq"].as_u64()?))
}

/// `lockstep_journal_batch_size` sum and count from `/metrics`.
fn batch_sum_count(admin: u16) -> Option<(f64, f64)> {
    let text = metrics_text(admin)?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((
        value("lockstep_journal_batch_size_sum")?,
        value("lockstep_journal_batch_size_count")?,
    ))
}

fn machine(dir: &Path, port: u16) -> Result<Machine, BenchError> {
    let version = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mariadb = setups::root_sql(port, "SELECT VERSION()")
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    Ok(Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into()),
        fsync_p50_ms: fsync_latency(dir)?,
        mariadb,
        sysbench: version("sysbench", "--version"),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    })
}

/// The median time of a 4 KiB write + fdatasync where the servers live.
fn fsync_latency(dir: &Path) -> Result<f64, BenchError> {
    use std::io::Write;
    let path: PathBuf = dir.join("fsync-probe");
    let io = |source| BenchError::Io {
        what: "fsync probe".into(),
        source,
    };
    let mut file = std::fs::File::create(&path).map_err(io)?;
    let block = [7u8; 4096];
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        file.write_all(&block).map_err(io)?;
        file.sync_data().map_err(io)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_file(&path);
    Ok(median(&mut times))
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i.min(values.len() - 1)]
}

fn median_run(runs: &[Run]) -> Run {
    let pick = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    Run {
        tps: pick(|r| r.tps),
        qps: pick(|r| r.qps),
        p50_ms: pick(|r| r.p50_ms),
        p95_ms: pick(|r| r.p95_ms),
        p99_ms: pick(|r| r.p99_ms),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_sums_are_read_from_the_metrics_text() {
        let text = "# HELP lockstep_write_phase_seconds Write-path time by phase.\n\
            lockstep_write_phase_seconds_sum{phase=\"run_on_sync\"} 1.5\n\
            lockstep_write_phase_seconds_count{phase=\"run_on_sync\"} 10\n\
            lockstep_write_phase_seconds_bucket{le=\"0.0001\",phase=\"number\"} 0\n\
            lockstep_write_phase_seconds_sum{phase=\"number\"} 0.25\n";
        let sums = phase_sums_of(text);
        assert_eq!(sums.len(), 2, "{sums:?}");
        assert_eq!(sums["run_on_sync"], 1.5);
        assert_eq!(sums["number"], 0.25);
    }
}
