//! `lockstep check --config FILE [--table DB.TABLE] [--chunk-rows N]`:
//! exit 0 when every node compared holds the master's data, 1 when one
//! differs (the tables and chunks are printed), 2 when it cannot check.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::CliError;
use crate::backend::Node;
use crate::chain::roles::Roles;
use crate::check::{self, Report};
use crate::config::Config;
use crate::journal::Journal;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The configuration of the lockstep whose nodes are compared.
    #[arg(long)]
    pub config: PathBuf,
    /// Only this table (`db.table`).
    #[arg(long)]
    pub table: Option<String>,
    /// Rows per chunk of a table's primary key.
    #[arg(long, default_value_t = 10_000)]
    pub chunk_rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckFailed {
    #[error("{0}")]
    Check(#[from] check::CheckError),
    #[error("the running lockstep at {addr}: {reason}")]
    Admin { addr: String, reason: String },
}

pub async fn run(args: CheckArgs) -> Result<ExitCode, CliError> {
    let config = Config::load(&args.config)?;
    let report = match from_running(&config, &args).await {
        Some(report) => report?,
        None => {
            eprintln!("lockstep is not running: the nodes are read directly");
            from_nodes(&config, &args).await?
        }
    };
    print!("{}", report.text());
    Ok(if report.differs() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks the running lockstep (its admin endpoint); None when none answers.
async fn from_running(config: &Config, args: &CheckArgs) -> Option<Result<Report, CheckFailed>> {
    let addr = config.admin_listen.to_string();
    let mut url = format!("http://{addr}/check?chunk_rows={}", args.chunk_rows);
    if let Some(table) = &args.table {
        url.push_str(&format!("&table={}", urlencode(table)));
    }
    let answer = tokio::task::spawn_blocking(move || {
        match ureq::get(&url).timeout(Duration::from_secs(600)).call() {
            Ok(response) => Answer::Report(response.into_string().map_err(|e| e.to_string())),
            Err(ureq::Error::Status(_, response)) => {
                Answer::Refused(response.into_string().unwrap_or_default())
            }
            // Nothing listens: lockstep is stopped.
            Err(ureq::Error::Transport(_)) => Answer::NotRunning,
        }
    })
    .await
    .ok()?;
    let failed = |reason: String| CheckFailed::Admin {
        addr: addr.clone(),
        reason,
    };
    match answer {
        Answer::Report(text) => {
            eprintln!("checked through the running lockstep at {addr}");
            let report = text
                .and_then(|text| serde_json::from_str::<Report>(&text).map_err(|e| e.to_string()));
            Some(report.map_err(failed))
        }
        Answer::Refused(reason) => Some(Err(failed(reason))),
        Answer::NotRunning => None,
    }
}

/// What the admin endpoint said.
enum Answer {
    Report(Result<String, String>),
    Refused(String),
    NotRunning,
}

/// With lockstep stopped, nothing writes: each node's snapshot is taken
/// directly; nodes at another commit than the master are not compared.
async fn from_nodes(config: &Config, args: &CheckArgs) -> Result<Report, CheckFailed> {
    let nodes: Vec<Node> = config
        .nodes
        .iter()
        .filter_map(|n| Node::from_config(n).ok())
        .collect();
    // After a failover the journal names the master.
    let master = Journal::open_existing(&config.journal_dir)
        .ok()
        .and_then(|j| {
            let master = j.master().ok().flatten();
            j.close();
            master
        });
    let roles = Roles::new(nodes, master.as_deref());
    let master = roles.master();
    let reference = check::open_snapshot(&master).await?;
    let mut others = Vec::new();
    let mut skipped = Vec::new();
    for member in roles.members() {
        if member.node.name == master.name {
            continue;
        }
        match check::open_snapshot(&member.node).await {
            Ok(snapshot) => others.push(snapshot),
            Err(e) => skipped.push((member.node.name.clone(), e.to_string())),
        }
    }
    let mut report =
        check::compare(reference, others, args.table.as_deref(), args.chunk_rows).await?;
    report.skipped.extend(skipped);
    Ok(report)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
