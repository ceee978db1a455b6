//! `lockstep journal (--config FILE | --journal DIR) stats | show ID | list [filters] [--json]`
//!
//! A running lockstep holds its journal open: with `--config`, the command
//! asks it (its admin endpoint); when it is stopped, or with `--journal`,
//! the directory is read directly. It says which it used.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::CliError;
use crate::chain::replay::Point;
use crate::config::Config;
use crate::journal::inspect::{self, Filter, Line, Shown, Stats};
use crate::journal::Journal;

#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    /// The configuration of the lockstep whose journal this is. Accepted
    /// before or after the subcommand (`journal stats --config F`).
    #[arg(long, global = true, conflicts_with = "journal")]
    pub config: Option<PathBuf>,
    /// The journal directory, read directly (lockstep must be stopped).
    #[arg(long, global = true)]
    pub journal: Option<PathBuf>,
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Entries, commits, size on disk, oldest and newest, states.
    Stats,
    /// One request: its entry with every node's result, and its commit.
    Show { id: uuid::Uuid },
    /// Entries, oldest first, one per line.
    List {
        /// Only entries in this state (pending, in_transaction, committed,
        /// failed, retrying_on_master, rolled_back, done).
        #[arg(long)]
        state: Option<String>,
        /// Made at or after this time (UTC, `2026-11-24 18:00:00`).
        #[arg(long)]
        since: Option<String>,
        /// Made at or before this time.
        #[arg(long)]
        until: Option<String>,
        /// Of this session (lockstep's connection id).
        #[arg(long)]
        session: Option<u32>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalCliError {
    #[error("give --config FILE or --journal DIR")]
    NoSource,
    #[error("{0}")]
    Time(String),
    #[error("the running lockstep at {addr}: {reason}")]
    Admin { addr: String, reason: String },
    #[error("no request {0} in the journal")]
    NotFound(uuid::Uuid),
}

pub async fn run(args: JournalArgs) -> Result<(), CliError> {
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let source = match (&args.journal, &config) {
        (Some(dir), _) => Source::Dir(dir.clone()),
        (None, Some(config)) => Source::Running {
            addr: config.admin_listen.to_string(),
            dir: config.journal_dir.clone(),
        },
        (None, None) => return Err(JournalCliError::NoSource.into()),
    };
    match args.what {
        What::Stats => print_stats(&source.get::<Stats>("/journal/stats", inspect::stats)?),
        What::Show { id } => {
            let shown: Option<Shown> =
                source.get(&format!("/journal/show/{id}"), |j| inspect::show(j, id))?;
            let shown = shown.ok_or(JournalCliError::NotFound(id))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
        }
        What::List {
            state,
            since,
            until,
            session,
            json,
        } => {
            let filter = Filter {
                state,
                since_us: since.as_deref().map(micros).transpose()?,
                until_us: until.as_deref().map(micros).transpose()?,
                session,
            };
            let query = serde_urlencoded_filter(&filter);
            let lines: Vec<Line> = source.get(&format!("/journal/list?{query}"), |j| {
                inspect::list(j, &filter)
            })?;
            for line in lines {
                if json {
                    println!("{}", serde_json::to_string(&line).unwrap_or_default());
                } else {
                    println!(
                        "{}  {}  session {}  {}  {}  {}",
                        line.id,
                        time_text(line.created_us),
                        line.session,
                        line.kind,
                        line.state,
                        line.statement.replace('\n', " ")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Where the journal is read.
enum Source {
    /// A running lockstep's admin endpoint, or its directory once it is stopped.
    Running {
        addr: String,
        dir: PathBuf,
    },
    Dir(PathBuf),
}

impl Source {
    /// `path` from the running lockstep, or `local` on the directory.
    fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        local: impl FnOnce(&Journal) -> Result<T, crate::journal::JournalError>,
    ) -> Result<T, CliError> {
        let dir = match self {
            Source::Dir(dir) => dir,
            Source::Running { addr, dir } => {
                let url = format!("http://{addr}{path}");
                match ureq::get(&url).timeout(Duration::from_secs(120)).call() {
                    Ok(response) => {
                        eprintln!("(from the running lockstep at {addr})");
                        // Streamed: a listing can exceed what ureq reads
                        // into one string (10 MB).
                        return serde_json::from_reader(response.into_reader()).map_err(|e| {
                            JournalCliError::Admin {
                                addr: addr.clone(),
                                reason: e.to_string(),
                            }
                            .into()
                        });
                    }
                    Err(ureq::Error::Status(404, _)) => {
                        return serde_json::from_str("null").map_err(|e| {
                            JournalCliError::Admin {
                                addr: addr.clone(),
                                reason: e.to_string(),
                            }
                            .into()
                        })
                    }
                    Err(ureq::Error::Status(_, response)) => {
                        return Err(JournalCliError::Admin {
                            addr: addr.clone(),
                            reason: response.into_string().unwrap_or_default(),
                        }
                        .into())
                    }
                    Err(ureq::Error::Transport(_)) => dir,
                }
            }
        };
        eprintln!(
            "(from the journal directory {}, read directly)",
            dir.display()
        );
        let journal = Journal::open_existing(dir)?;
        let result = local(&journal);
        journal.close();
        Ok(result?)
    }
}

fn print_stats(stats: &Stats) {
    println!("entries      {}", stats.entries);
    println!(
        "commits      {} (last seq {})",
        stats.commits, stats.last_seq
    );
    println!("size on disk {} bytes", stats.size_bytes);
    println!(
        "oldest       {}",
        stats.oldest_us.map(time_text).unwrap_or_else(|| "-".into())
    );
    println!(
        "newest       {}",
        stats.newest_us.map(time_text).unwrap_or_else(|| "-".into())
    );
    for (state, n) in &stats.entry_states {
        println!("entries {state:<18} {n}");
    }
    for (state, n) in &stats.commit_states {
        println!("commits {state:<18} {n}");
    }
}

fn micros(text: &str) -> Result<i64, JournalCliError> {
    match text.parse::<Point>() {
        Ok(Point::Time(us)) => Ok(us),
        _ => Err(JournalCliError::Time(format!(
            "{text:?} is not a time (UTC, 2026-11-24 18:00:00)"
        ))),
    }
}

fn time_text(micros: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    humantime::format_rfc3339_micros(time).to_string()
}

/// The filter as a query string for the admin endpoint.
fn serde_urlencoded_filter(filter: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(state) = &filter.state {
        parts.push(format!("state={state}"));
    }
    if let Some(t) = filter.since_us {
        parts.push(format!("since_us={t}"));
    }
    if let Some(t) = filter.until_us {
        parts.push(format!("until_us={t}"));
    }
    if let Some(s) = filter.session {
        parts.push(format!("session={s}"));
    }
    parts.join("&")
}
