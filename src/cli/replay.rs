//! `lockstep replay --journal DIR --target URL [--from P] [--until P] [--dry-run]`

use std::path::PathBuf;

use tracing::info;

use super::CliError;
use crate::backend::Node;
use crate::chain::replay::{self, Point};
use crate::config;
use crate::journal::Journal;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The journal directory (of a stopped lockstep: a running one holds it).
    #[arg(long)]
    pub journal: PathBuf,
    /// `mysql://user:password@host:port` of the server to apply it to.
    #[arg(long)]
    pub target: String,
    /// First commit to apply: a commit number, a requestId, or a time.
    #[arg(long)]
    pub from: Option<Point>,
    /// Last commit to apply: a commit number, a requestId, or a time (UTC,
    /// `2026-11-24 18:00:00`: the last commit made at or before it).
    #[arg(long)]
    pub until: Option<Point>,
    /// Print the SQL instead of running it (the target is only read, for
    /// what it has and its character sets); pipe it into `mariadb`.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: ReplayArgs) -> Result<(), CliError> {
    let target = Node::from_config(&config::Node {
        name: "target".into(),
        url: args.target.clone(),
    })
    .map_err(|e| replay::ReplayError::Point(format!("--target: {e}")))?;
    let journal = Journal::open_existing(&args.journal)?;
    let bounds = replay::bounds(&journal, args.from.as_ref(), args.until.as_ref())?;
    let summary = if args.dry_run {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let summary = replay::dry_run(&journal, &target, bounds, &mut out).await?;
        std::io::Write::flush(&mut out)?;
        summary
    } else {
        replay::apply(journal.clone(), target, bounds).await?
    };
    info!(
        applied = summary.applied,
        from = summary.from,
        until = summary.until,
        dry_run = args.dry_run,
        "replay done: the commits the target lacked in that range"
    );
    eprintln!(
        "lockstep replay: {} commits {} ({}..={}), the rest the target had or the journal does not hold as committed",
        summary.applied,
        if args.dry_run { "printed" } else { "applied" },
        summary.from,
        summary.until
    );
    journal.close();
    Ok(())
}
