//! The load rows of the comparison: one closed-loop run per (operation, clients), the same
//! operations for every system.

use std::sync::Arc;

use super::{Shape, System};
use qastore_testkit::load::{closed_loop, LoadResult, Window};

/// What a load row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// One record per request.
    Put(Shape),
    /// [`super::BATCH`] records per request, through the system's batching path.
    Batched,
    /// Reads on the followers, linearizable or local (etcd: serializable).
    FollowerRead {
        /// Whether the read is linearizable.
        linearizable: bool,
    },
}

impl RowKind {
    /// Every kind, in the order the comparison runs them, with the short name `--rows` takes.
    pub const ALL: [(&'static str, RowKind); 5] = [
        ("put", RowKind::Put(Shape::Kv)),
        ("put-exchange", RowKind::Put(Shape::Exchange)),
        ("batched", RowKind::Batched),
        (
            "read-linearizable",
            RowKind::FollowerRead { linearizable: true },
        ),
        (
            "read-local",
            RowKind::FollowerRead {
                linearizable: false,
            },
        ),
    ];

    /// The kind `--rows` names `name`.
    pub fn by_name(name: &str) -> Option<RowKind> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The row's name in the report.
    pub fn label(&self) -> &'static str {
        match self {
            RowKind::Put(Shape::Kv) => "write 1 record/request (16 B key, 128 B value)",
            RowKind::Put(Shape::Exchange) => "write 1 record/request (exchange record)",
            RowKind::Batched => "write 100-record batches (ingestor / etcd txn)",
            RowKind::FollowerRead { linearizable: true } => "follower read, linearizable",
            RowKind::FollowerRead {
                linearizable: false,
            } => "follower read, local / serializable",
        }
    }

    /// Whether the row's figure is records (true) or operations (false) per second.
    pub fn counts_records(&self) -> bool {
        matches!(self, RowKind::Batched)
    }
}

/// Runs one row against `sys` with `clients` clients. Follower reads go to every node but the
/// leader, spread over the clients.
pub async fn run_row<S: System>(
    sys: &Arc<S>,
    kind: RowKind,
    clients: usize,
    window: Window,
) -> Result<LoadResult, String> {
    Ok(match kind {
        RowKind::Put(shape) => {
            let s = sys.clone();
            closed_loop(clients, window, move |w, seq| {
                let s = s.clone();
                async move { s.put(w, seq, shape).await }
            })
            .await
        }
        RowKind::Batched => sys.batched_row(clients, window).await,
        RowKind::FollowerRead { linearizable } => {
            let leader = sys
                .leader()
                .await
                .ok_or_else(|| format!("{}: no leader", sys.name()))?;
            let followers: Vec<usize> = (0..sys.nodes()).filter(|n| *n != leader).collect();
            let s = sys.clone();
            closed_loop(clients, window, move |w, seq| {
                let s = s.clone();
                let node = followers[w % followers.len()];
                async move { s.read(node, w, seq, linearizable).await }
            })
            .await
        }
    })
}
