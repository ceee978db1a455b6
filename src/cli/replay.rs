//! `lockstep replay --journal DIR --target URL [--from P] [--until P] [--dry-run]`

use std::path::{Path, PathBuf};

use tracing::info;

use super::CliError;
use crate::backend::Node;
use crate::chain::replay::{self, Point};
use crate::config::{self, Config};
use crate::journal::inspect::{self, Exported};
use crate::journal::Journal;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The journal directory (of a stopped lockstep: a running one holds it).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub journal: Option<PathBuf>,
    /// The configuration of a lockstep: its journal is read through its
    /// admin endpoint while it runs, from its directory once it is stopped.
    #[arg(long)]
    pub config: Option<PathBuf>,
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
    // Kept until the replay is done: a running lockstep's journal is
    // copied into a scratch one here.
    let scratch = tempfile::tempdir()?;
    let journal = open_journal(&args, scratch.path()).await?;
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

/// The journal to replay: the directory given, or the one of `--config`'s
/// lockstep (copied from it through its admin endpoint while it runs).
async fn open_journal(args: &ReplayArgs, scratch: &Path) -> Result<Journal, CliError> {
    if let Some(dir) = &args.journal {
        return Ok(Journal::open_existing(dir)?);
    }
    let Some(path) = &args.config else {
        return Err(
            replay::ReplayError::Point("give --journal DIR or --config FILE".into()).into(),
        );
    };
    let config = Config::load(path)?;
    let addr = config.admin_listen.to_string();
    let url = format!("http://{addr}/journal/export");
    // Streamed from the response: a journal can be far larger than what
    // ureq reads into one string (10 MB).
    let answer = tokio::task::spawn_blocking(move || match ureq::get(&url).call() {
        Ok(response) => Some(
            serde_json::from_reader::<_, Vec<Exported>>(response.into_reader())
                .map_err(|e| e.to_string()),
        ),
        // A standby serves no journal: its answer names the active one.
        Err(ureq::Error::Status(status, response)) => Some(Err(format!(
            "HTTP {status}: {}",
            response.into_string().unwrap_or_default()
        ))),
        Err(ureq::Error::Transport(_)) => None,
    })
    .await
    .map_err(std::io::Error::other)?;
    let Some(commits) = answer else {
        eprintln!("lockstep is not running: its journal directory is read directly");
        return Ok(Journal::open_existing(&config.journal_dir)?);
    };
    let commits = commits
        .map_err(|e| replay::ReplayError::Point(format!("the running lockstep at {addr}: {e}")))?;
    eprintln!(
        "replaying the journal of the running lockstep at {addr} ({} commits)",
        commits.len()
    );
    let journal = Journal::open(scratch)?;
    inspect::import(&journal, &commits).await?;
    Ok(journal)
}
