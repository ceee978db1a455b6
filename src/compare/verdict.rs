//! How a node's result for a statement compares with the master's.

use crate::journal::Outcome;

pub use crate::journal::Verdict;

impl Verdict {
    /// Its name in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::BothFailed => "both_failed",
            Verdict::NodeFailed => "node_failed",
            Verdict::MasterFailed => "master_failed",
            Verdict::Diverged { .. } => "diverged",
        }
    }

    pub fn is_agreement(&self) -> bool {
        matches!(self, Verdict::Agree | Verdict::BothFailed)
    }
}

/// Which parts of two successful results are compared.
#[derive(Debug, Clone, Copy)]
pub struct Compared {
    pub affected_rows: bool,
    pub rows: bool,
}

impl Compared {
    pub const ALL: Compared = Compared {
        affected_rows: true,
        rows: true,
    };
}

/// Compares a node's outcome with the master's. A lost connection counts as
/// a failure of that node.
pub fn compare(master: &Outcome, node: &Outcome, compared: Compared) -> Verdict {
    match (master, node) {
        (
            Outcome::Ok {
                affected_rows: a_rows,
                last_insert_id: a_id,
                rows: a_set,
                insert_ids: a_ids,
                ..
            },
            Outcome::Ok {
                affected_rows: n_rows,
                last_insert_id: n_id,
                rows: n_set,
                insert_ids: n_ids,
                ..
            },
        ) => {
            let mut what = Vec::new();
            if a_rows != n_rows && compared.affected_rows {
                what.push(format!(
                    "affected rows {a_rows} on the master, {n_rows} here"
                ));
            }
            if a_id != n_id {
                what.push(format!("insert id {a_id} on the master, {n_id} here"));
            } else if !same_statement_ids(a_ids, n_ids) {
                // A later statement of the text made another value.
                what.push(format!(
                    "insert ids {a_ids:?} on the master, {n_ids:?} here"
                ));
            }
            if a_set != n_set && compared.rows {
                what.push("different result rows".to_string());
            }
            if what.is_empty() {
                Verdict::Agree
            } else {
                Verdict::Diverged {
                    what: what.join("; "),
                }
            }
        }
        (Outcome::Ok { .. }, _) => Verdict::NodeFailed,
        (_, Outcome::Ok { .. }) => Verdict::MasterFailed,
        _ => Verdict::BothFailed,
    }
}

/// Each statement's AUTO_INCREMENT value agrees: lockstep's own
/// statements ahead of the client's text differ in number between nodes
/// (a pin in its own trip, a savepoint), so the results are paired from
/// the end.
fn same_statement_ids(master: &[u64], node: &[u64]) -> bool {
    if master.is_empty() || node.is_empty() {
        return true;
    }
    master
        .iter()
        .rev()
        .zip(node.iter().rev())
        .all(|(a, n)| a == n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::digest::Rows;

    fn ok(affected_rows: u64, last_insert_id: u64, rows: Option<Rows>) -> Outcome {
        Outcome::Ok {
            affected_rows,
            last_insert_id,
            warnings: 0,
            rows,
            insert_ids: Vec::new(),
        }
    }

    fn err(code: u16) -> Outcome {
        Outcome::Error {
            code,
            state: "HY000".into(),
            message: "x".into(),
        }
    }

    fn compare_strict(master: &Outcome, node: &Outcome) -> Verdict {
        compare(master, node, Compared::ALL)
    }

    #[test]
    fn the_reconciliation_table() {
        assert_eq!(
            compare_strict(&ok(1, 5, None), &ok(1, 5, None)),
            Verdict::Agree
        );
        assert_eq!(compare_strict(&err(1062), &err(1062)), Verdict::BothFailed);
        assert_eq!(
            compare_strict(&ok(1, 0, None), &err(1146)),
            Verdict::NodeFailed
        );
        assert_eq!(
            compare_strict(&ok(1, 0, None), &Outcome::Lost { reason: "x".into() }),
            Verdict::NodeFailed
        );
        assert_eq!(
            compare_strict(&err(1644), &ok(1, 0, None)),
            Verdict::MasterFailed
        );
        assert!(matches!(
            compare_strict(&ok(2, 0, None), &ok(1, 0, None)),
            Verdict::Diverged { .. }
        ));
        let rows = |c: &str| {
            Some(Rows {
                count: 1,
                checksum: c.into(),
            })
        };
        assert!(matches!(
            compare_strict(&ok(0, 0, rows("a")), &ok(0, 0, rows("b"))),
            Verdict::Diverged { .. }
        ));
        // Warnings alone do not make a divergence: they depend on the
        // session (sql_mode notes, optimizer hints) more than on the data.
        let warned = Outcome::Ok {
            affected_rows: 1,
            last_insert_id: 0,
            warnings: 3,
            rows: None,
            insert_ids: Vec::new(),
        };
        assert_eq!(compare_strict(&ok(1, 0, None), &warned), Verdict::Agree);
    }

    #[test]
    fn statements_values_are_paired_from_the_end() {
        assert!(same_statement_ids(&[0, 0, 0, 0, 1], &[0, 0, 0, 1]));
        assert!(same_statement_ids(&[], &[0, 5]));
        assert!(!same_statement_ids(&[0, 3, 0, 7], &[0, 3, 0, 8]));
        assert!(!same_statement_ids(&[0, 290, 0], &[289, 0]));
    }
}
