//! Admission: the one decision, taken before a write is proposed, whether the node has room
//! for it. It weighs the disk quota, the entries still waiting to be applied and the storage
//! engine's write stall; the engine keeps its own stop as a last guard behind it.

/// How full the node is when a write arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Bytes the data directory holds.
    pub disk_used: u64,
    /// The disk quota in bytes (0: none).
    pub disk_quota: u64,
    /// Log entries committed or appended but not applied yet.
    pub apply_lag: u64,
    /// The most entries allowed to wait for apply.
    pub max_apply_lag: u64,
    /// Whether the engine waits for compaction before it takes more writes.
    pub write_stalled: bool,
}

/// The bytes a data directory holds against its quota, measured outside Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUse {
    /// Bytes held.
    pub used: u64,
    /// The quota in bytes (0: none).
    pub quota: u64,
}

impl DiskUse {
    /// No quota: the disk never refuses a write.
    pub const UNLIMITED: DiskUse = DiskUse { used: 0, quota: 0 };
}

/// Proof that a write was admitted: a write is proposed only with one.
#[derive(Debug)]
pub struct Admitted(pub(crate) ());

/// Which limit refused a write; every one clears with time, so the caller retries later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Overload {
    /// The data directory is at its quota.
    #[error(
        "disk quota: the data directory holds {used} bytes, at its quota of {quota} bytes; \
         writes are refused until space is freed"
    )]
    DiskQuota {
        /// Bytes held.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// Too many entries wait to be applied.
    #[error("apply lag: {waiting} entries are waiting to be applied, above the limit of {limit}")]
    ApplyLag {
        /// Entries waiting.
        waiting: u64,
        /// The limit.
        limit: u64,
    },
    /// The engine waits for compaction.
    #[error("write stall: the storage engine is waiting for compaction to catch up")]
    WriteStall,
}

/// Admits a write under `load`, or names the limit it would pass. The disk comes first: of
/// the three it is the one that does not clear by itself.
pub fn admit(load: &Load) -> Result<(), Overload> {
    if load.disk_quota > 0 && load.disk_used >= load.disk_quota {
        return Err(Overload::DiskQuota {
            used: load.disk_used,
            quota: load.disk_quota,
        });
    }
    if load.write_stalled {
        return Err(Overload::WriteStall);
    }
    if load.apply_lag > load.max_apply_lag {
        return Err(Overload::ApplyLag {
            waiting: load.apply_lag,
            limit: load.max_apply_lag,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Load {
        Load {
            disk_used: 100,
            disk_quota: 1_000,
            apply_lag: 5,
            max_apply_lag: 10,
            write_stalled: false,
        }
    }

    #[test]
    fn an_idle_node_admits() {
        assert_eq!(admit(&idle()), Ok(()));
        let no_quota = Load {
            disk_used: u64::MAX,
            disk_quota: 0,
            ..idle()
        };
        assert_eq!(admit(&no_quota), Ok(()));
        let at_the_lag_limit = Load {
            apply_lag: 10,
            ..idle()
        };
        assert_eq!(admit(&at_the_lag_limit), Ok(()));
    }

    #[test]
    fn a_full_disk_refuses() {
        let e = admit(&Load {
            disk_used: 1_000,
            ..idle()
        })
        .unwrap_err();
        assert_eq!(
            e,
            Overload::DiskQuota {
                used: 1_000,
                quota: 1_000
            }
        );
        assert!(e.to_string().starts_with("disk quota"), "{e}");
    }

    #[test]
    fn an_apply_lag_above_the_limit_refuses() {
        let e = admit(&Load {
            apply_lag: 11,
            ..idle()
        })
        .unwrap_err();
        assert_eq!(
            e,
            Overload::ApplyLag {
                waiting: 11,
                limit: 10
            }
        );
        assert!(e.to_string().starts_with("apply lag"), "{e}");
    }

    #[test]
    fn a_stalled_engine_refuses() {
        let e = admit(&Load {
            write_stalled: true,
            ..idle()
        })
        .unwrap_err();
        assert_eq!(e, Overload::WriteStall);
        assert!(e.to_string().starts_with("write stall"), "{e}");
    }
}
