//! `lockstep bench [--quick] [--out DIR]` (what `bench/run` runs).

use std::path::PathBuf;

use super::CliError;
use crate::bench;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A short run (under 5 minutes on 2 cores): point selects and
    /// write-only at 8 threads.
    #[arg(long)]
    pub quick: bool,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Measure nothing: write the report of an earlier run from its JSON
    /// (after a change to the report, or when writing it failed).
    #[arg(long, value_name = "JSON")]
    pub report_from: Option<PathBuf>,
    /// Also measure this lockstep binary (an earlier build), as
    /// `lockstep-baseline`, interleaved with the rest: a change's effect as
    /// a ratio from one run.
    #[arg(long, value_name = "BINARY")]
    pub baseline: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    if let Some(json) = &args.report_from {
        let text = std::fs::read_to_string(json)?;
        let results: bench::Results = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", json.display())))?;
        let report = bench::write_report(&results, &args.out)?;
        println!("report: {}", report.display());
        return Ok(());
    }
    let work = tempfile::Builder::new()
        .prefix("lockstep-bench")
        .tempdir()?;
    let mut plan = if args.quick {
        bench::Plan::quick()
    } else {
        bench::Plan::full()
    };
    if let Some(binary) = args.baseline {
        if !binary.is_file() {
            return Err(std::io::Error::other(format!(
                "--baseline {}: no such file",
                binary.display()
            ))
            .into());
        }
        plan.baseline = Some(std::fs::canonicalize(&binary)?);
    }
    let results = bench::run(plan, args.quick, work.path())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let report = bench::write_report(&results, &args.out)?;
    println!("report: {}", report.display());
    Ok(())
}
