//! The counters and gauges of the whole process, which `GET /metrics`
//! exposes (OpenMetrics text, `admin` serves it). A low floor: every part
//! counts here, and it imports nothing of lockstep.
//!
//! One process-wide set: every part of lockstep counts what it does here
//! (`metrics::get()`), and the node gauges are read from the roles when the
//! endpoint is scraped.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeRoleLabel {
    pub node: String,
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: String,
}

pub struct Metrics {
    pub client_connections: Gauge,
    pub statements: Family<RouteLabel, Counter>,
    /// End to end, a write-path statement as its client sees it.
    pub write_seconds: Histogram,
    /// Where a write-path statement's time goes: one histogram per named
    /// phase of the write protocol (`write::Phase`).
    pub write_phase_seconds: Family<PhaseLabel, Histogram, fn() -> Histogram>,
    /// One node's part: a statement on the master or the synchronous slave,
    /// a whole commit on a node replaying the journal.
    pub node_seconds: Family<NodeLabel, Histogram, fn() -> Histogram>,
    pub compare_verdicts: Family<VerdictLabel, Counter>,
    pub quarantines: Family<NodeLabel, Counter>,
    /// Re-runs of an entry a node failed (the applier's retries).
    pub retries: Family<NodeLabel, Counter>,
    pub failovers: Counter,
    pub journal_batches: Counter,
    pub journal_entries: Counter,
    /// Entries written whole, and those of them that replaced an entry
    /// already stored (a new state, a node's result appended): the speed
    /// issue's budget is none of the latter per transaction.
    pub journal_entry_writes: Counter,
    pub journal_entry_rewrites: Counter,
    pub journal_batch_size: Histogram,
    pub journal_flush_seconds: Histogram,
    pub journal_last_seq: Gauge,
    pub journal_bytes: Gauge,
    pub node_role: Family<NodeRoleLabel, Gauge>,
    pub node_up: Family<NodeLabel, Gauge>,
    pub node_applied_seq: Family<NodeLabel, Gauge>,
    pub node_lag_commits: Family<NodeLabel, Gauge>,
    /// Round trips client sessions made to the master and to the
    /// synchronous slave (a command written behind another before its
    /// answer, or one the server does not answer, is none), by role: the
    /// cost of a statement in node trips.
    pub session_node_round_trips: Family<RoleLabel, Counter>,
    /// Round trips the tail appliers made to their nodes, by node: the
    /// cost of applying the journal.
    pub applier_round_trips: Family<NodeLabel, Counter>,
    /// Lock cycles across the master and the synchronous slave broken by
    /// interrupting a victim's statement on the master.
    pub lock_cycles_broken: Counter,
    /// Rows relayed from a node to clients, and those of them decoded on
    /// the way (for the compare module's digest of a write's result): a
    /// read's rows travel as the node's bytes.
    pub relayed_rows: Counter,
    pub relayed_rows_decoded: Counter,
    registry: Registry,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lockstep");
        let m = Metrics {
            client_connections: Gauge::default(),
            statements: Family::default(),
            write_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            write_phase_seconds: Family::new_with_constructor(latency_histogram),
            node_seconds: Family::new_with_constructor(latency_histogram),
            compare_verdicts: Family::default(),
            quarantines: Family::default(),
            retries: Family::default(),
            failovers: Counter::default(),
            journal_batches: Counter::default(),
            journal_entries: Counter::default(),
            journal_entry_writes: Counter::default(),
            journal_entry_rewrites: Counter::default(),
            journal_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            journal_flush_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            journal_last_seq: Gauge::default(),
            journal_bytes: Gauge::default(),
            node_role: Family::default(),
            node_up: Family::default(),
            node_applied_seq: Family::default(),
            node_lag_commits: Family::default(),
            session_node_round_trips: Family::default(),
            applier_round_trips: Family::default(),
            lock_cycles_broken: Counter::default(),
            relayed_rows: Counter::default(),
            relayed_rows_decoded: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "lock_cycles_broken",
            "Lock cycles across the master and the synchronous slave, broken by answering one statement 1213",
            m.lock_cycles_broken.clone(),
        );
        registry.register(
            "relayed_rows",
            "Rows relayed from a node to clients",
            m.relayed_rows.clone(),
        );
        registry.register(
            "relayed_rows_decoded",
            "Rows relayed to clients that were decoded on the way (a write's result, for the compare module)",
            m.relayed_rows_decoded.clone(),
        );
        registry.register(
            "client_connections",
            "Client sessions open",
            m.client_connections.clone(),
        );
        registry.register(
            "statements",
            "Client statements by route",
            m.statements.clone(),
        );
        registry.register(
            "write_seconds",
            "Write-path statements, end to end as the client sees them",
            m.write_seconds.clone(),
        );
        registry.register(
            "write_phase_seconds",
            "Write-path time by phase of the write protocol (run on B, run on A, number, commit on A, commit on B, ...)",
            m.write_phase_seconds.clone(),
        );
        registry.register(
            "node_seconds",
            "Time on one node: a statement on the master or the synchronous slave, a commit replayed elsewhere",
            m.node_seconds.clone(),
        );
        registry.register(
            "compare_verdicts",
            "Node results compared with the master's, by verdict",
            m.compare_verdicts.clone(),
        );
        registry.register(
            "quarantines",
            "Nodes quarantined because they diverged",
            m.quarantines.clone(),
        );
        registry.register(
            "retries",
            "Re-runs of an entry a node failed",
            m.retries.clone(),
        );
        registry.register("failovers", "Masters replaced", m.failovers.clone());
        registry.register(
            "journal_batches",
            "Journal batches written",
            m.journal_batches.clone(),
        );
        registry.register(
            "journal_writes",
            "Writes (entries, results, commit records) applied to the journal",
            m.journal_entries.clone(),
        );
        registry.register(
            "journal_entry_writes",
            "Entries written whole to the journal",
            m.journal_entry_writes.clone(),
        );
        registry.register(
            "journal_entry_rewrites",
            "Entries written whole over one already stored (a new state, a node's result appended)",
            m.journal_entry_rewrites.clone(),
        );
        registry.register(
            "journal_batch_size",
            "Writes per journal batch (group commit)",
            m.journal_batch_size.clone(),
        );
        registry.register(
            "journal_flush_seconds",
            "Time to apply and sync a journal batch that a writer waits for",
            m.journal_flush_seconds.clone(),
        );
        registry.register(
            "journal_last_seq",
            "The last commit sequence number handed out",
            m.journal_last_seq.clone(),
        );
        registry.register(
            "journal_bytes",
            "Bytes the journal's directory holds",
            m.journal_bytes.clone(),
        );
        registry.register(
            "node_role",
            "1 for each node's current role",
            m.node_role.clone(),
        );
        registry.register(
            "node_up",
            "1 while lockstep reaches the node (as far as its role shows)",
            m.node_up.clone(),
        );
        registry.register(
            "node_applied_seq",
            "The last commit the node has",
            m.node_applied_seq.clone(),
        );
        registry.register(
            "node_lag_commits",
            "Commits the node is behind the journal",
            m.node_lag_commits.clone(),
        );
        registry.register(
            "session_node_round_trips",
            "Round trips client sessions made to the master and the synchronous slave, by role",
            m.session_node_round_trips.clone(),
        );
        registry.register(
            "applier_round_trips",
            "Round trips the tail appliers made to their nodes, by node",
            m.applier_round_trips.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text format of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

/// Counts a client statement by its route.
pub fn count_statement(route: &str) {
    get()
        .statements
        .get_or_create(&RouteLabel {
            route: route.to_string(),
        })
        .inc();
}

pub fn count_verdict(verdict: &str) {
    get()
        .compare_verdicts
        .get_or_create(&VerdictLabel {
            verdict: verdict.to_string(),
        })
        .inc();
}

pub fn count_for_node(family: &Family<NodeLabel, Counter>, node: &str) {
    family
        .get_or_create(&NodeLabel {
            node: node.to_string(),
        })
        .inc();
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Counts `round_trips` a client session made to the node in `role`.
pub fn count_session_node_round_trips(role: &str, round_trips: u64) {
    get()
        .session_node_round_trips
        .get_or_create(&RoleLabel {
            role: role.to_string(),
        })
        .inc_by(round_trips);
}

/// Counts `round_trips` the applier of `node` made to it.
pub fn count_applier_round_trips(node: &str, round_trips: u64) {
    get()
        .applier_round_trips
        .get_or_create(&NodeLabel {
            node: node.to_string(),
        })
        .inc_by(round_trips);
}

/// Records `seconds` spent in one phase of the write protocol.
pub fn observe_phase(phase: &str, seconds: f64) {
    get()
        .write_phase_seconds
        .get_or_create(&PhaseLabel {
            phase: phase.to_string(),
        })
        .observe(seconds);
}

/// Records `seconds` spent on `node`.
pub fn observe_node(node: &str, seconds: f64) {
    get()
        .node_seconds
        .get_or_create(&NodeLabel {
            node: node.to_string(),
        })
        .observe(seconds);
}

/// Counts the rows of one result set relayed to a client, `decoded` of them
/// decoded on the way.
pub fn count_relayed_rows(rows: u64, decoded: u64) {
    let m = get();
    m.relayed_rows.inc_by(rows);
    m.relayed_rows_decoded.inc_by(decoded);
}
