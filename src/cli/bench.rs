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
}

pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    let work = tempfile::Builder::new()
        .prefix("lockstep-bench")
        .tempdir()?;
    let plan = if args.quick {
        bench::Plan::quick()
    } else {
        bench::Plan::full()
    };
    let results = bench::run(plan, args.quick, work.path())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let report = bench::write_report(&results, &args.out)?;
    println!("report: {}", report.display());
    Ok(())
}
