//! Retention: dropping whole old partitions and old journal entries (with the commit times of
//! their batches), as an engine operation at a log index (the Raft layer proposes it with
//! explicit cut-offs, so no node consults a clock).
//!
//! Removed partitions stay in the catalog as tombstones (marked with the log index that removed
//! them). Their files are deleted by [`sweep`] only once that index is flushed: until then a
//! checkpoint of the flushed state may still list them. Sweeping also removes partition
//! directories no catalog entry knows (files of a conversion that never committed here, e.g.
//! replaced by an installed snapshot).

use super::{catalog, origin};
use crate::calendar::TradingCalendar;
use crate::error::Result;
use crate::keys::{self, Stream};
use qastore_lsm::Engine;
use qastore_lsm::{BatchOp, WriteBatch};

/// What to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Drop partitions of trading days before this one (`YYYYMMDD`).
    pub drop_days_before: Option<u32>,
    /// Drop journal entries (and parked updates) of log indexes before this one.
    pub drop_journal_before: Option<u64>,
}

/// How much history to keep: the operator's setting (for example a `[retention]` table in the
/// node's config), turned into explicit cut-offs by [`RetentionConfig::policy`] where the
/// retention run is proposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep the Parquet partitions of this many trading days, the current one included.
    pub keep_trading_days: Option<u32>,
    /// Keep the journal entries of this many log indexes, the last applied one included.
    pub keep_log_entries: Option<u64>,
}

impl RetentionConfig {
    /// The cut-offs these settings give on `trading_day` with `applied_index` the last applied
    /// log index. Keeping zero of something drops nothing (a setting of 0 is taken as a slip).
    pub fn policy(
        &self,
        calendar: &TradingCalendar,
        trading_day: u32,
        applied_index: u64,
    ) -> RetentionPolicy {
        let drop_days_before = self.keep_trading_days.filter(|&n| n > 0).map(|n| {
            let mut first_kept = trading_day;
            for _ in 1..n {
                first_kept = calendar.previous_trading_day(first_kept);
            }
            first_kept
        });
        let drop_journal_before = self
            .keep_log_entries
            .filter(|&n| n > 0)
            .map(|n| (applied_index + 1).saturating_sub(n));
        RetentionPolicy {
            drop_days_before,
            drop_journal_before,
        }
    }
}

/// What a retention run dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Part files marked removed (every part of each dropped partition).
    pub partitions_removed: usize,
    /// Journal entries deleted.
    pub journal_entries_removed: u64,
    /// Parked updates deleted (updates whose order never came).
    pub parked_removed: u64,
}

/// What a sweep deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Partition directories deleted.
    pub partitions_deleted: usize,
    /// Files deleted from live partitions that no catalog entry names (a part written by a
    /// conversion that never committed here).
    pub stray_files_deleted: usize,
}

/// Applies `policy` at `log_index`, with `extra` (the caller's own operations) in the same
/// engine batch, then sweeps files whose removal is already flushed.
pub fn retain(
    engine: &Engine,
    policy: RetentionPolicy,
    log_index: u64,
    extra: WriteBatch,
) -> Result<Retention> {
    let _olap = super::lock(engine);
    let mut batch = WriteBatch::new();
    let mut report = Retention::default();
    // Ticks and trades stay replayable from the parts and the journal above this.
    let mut replay_floor = origin::replay_floor(engine)?;
    if let Some(cutoff) = policy.drop_days_before {
        for stream in [Stream::Ticks, Stream::Trades] {
            for mut entry in catalog::all(engine, stream)? {
                if entry.is_live() && entry.trading_day < cutoff {
                    if let Some((_, last)) = origin::part_span(engine, &entry)? {
                        replay_floor = replay_floor.max(last + 1);
                    }
                    entry.removed_at = Some(log_index);
                    catalog::put(&mut batch, &entry);
                    report.partitions_removed += 1;
                }
            }
        }
    }
    if let Some(cutoff) = policy.drop_journal_before {
        if let Some(index) = origin::uncovered_below(engine, cutoff, &mut batch)? {
            replay_floor = replay_floor.max(index + 1);
        }
        for row in crate::query::range::scan_keys(
            engine,
            keys::journal_from(0),
            keys::journal_from(cutoff),
            None,
        ) {
            batch.delete(row?.0);
            report.journal_entries_removed += 1;
        }
        for row in crate::query::range::scan_keys(
            engine,
            keys::commit_time(0),
            keys::commit_time(cutoff),
            None,
        ) {
            batch.delete(row?.0);
        }
        if cutoff > crate::feed::journal::floor(engine)? {
            batch.put(
                keys::journal_floor(),
                bytes::Bytes::copy_from_slice(&cutoff.to_be_bytes()),
            );
        }
        report.parked_removed = drop_parked(engine, cutoff, &mut batch)?;
    }
    if report.partitions_removed > 0 || report.journal_entries_removed > 0 {
        origin::raise_replay_floor(engine, &mut batch, replay_floor)?;
    }
    for op in extra.ops() {
        match op {
            BatchOp::Put { key, value } => batch.put(key.clone(), value.clone()),
            BatchOp::Delete { key } => batch.delete(key.clone()),
        };
    }
    engine.apply(&batch, log_index)?;
    sweep_locked(engine)?;
    tracing::info!(?report, "retention applied");
    Ok(report)
}

/// Deletes parked updates older than `cutoff` (updates whose order never came), and the marker
/// of every order left with none.
/// Whether applying `policy` would drop anything: a live partition of an older trading day,
/// or a journal entry below the cut-off. Lets a scheduler skip runs that would do nothing.
pub fn would_drop(engine: &Engine, policy: RetentionPolicy) -> Result<bool> {
    if let Some(cutoff) = policy.drop_days_before {
        for stream in [Stream::Ticks, Stream::Trades] {
            if catalog::all(engine, stream)?
                .iter()
                .any(|e| e.is_live() && e.trading_day < cutoff)
            {
                return Ok(true);
            }
        }
    }
    if let Some(cutoff) = policy.drop_journal_before {
        let first = crate::query::range::scan_keys(
            engine,
            keys::journal_from(0),
            keys::journal_from(cutoff),
            None,
        )
        .next();
        if first.transpose()?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn drop_parked(engine: &Engine, cutoff: u64, batch: &mut WriteBatch) -> Result<u64> {
    let mut dropped = 0;
    // Parked keys are `x user \0 order \0 <index><ordinal>`: grouped by order prefix.
    let mut current: Option<(Vec<u8>, bool)> = None;
    let close = |group: Option<(Vec<u8>, bool)>, batch: &mut WriteBatch| {
        if let Some((prefix, emptied)) = group {
            if emptied {
                let mut marker = vec![keys::PARKED_MARKER];
                marker.extend_from_slice(&prefix[1..prefix.len() - 1]);
                batch.delete(marker);
            }
        }
    };
    for row in engine.scan_prefix(&[keys::PARKED]) {
        let (k, _) = row?;
        let Some((index, _)) = keys::parse_event_suffix(&k) else {
            continue;
        };
        let prefix = k[..k.len() - 12].to_vec();
        if current.as_ref().is_none_or(|(p, _)| *p != prefix) {
            close(current.take(), batch);
            current = Some((prefix, true));
        }
        if index < cutoff {
            batch.delete(k);
            dropped += 1;
        } else if let Some((_, emptied)) = current.as_mut() {
            *emptied = false;
        }
    }
    close(current, batch);
    Ok(dropped)
}

/// Deletes the files of partitions removed at or before the flushed index, and partition
/// directories the catalog does not know.
pub fn sweep(engine: &Engine) -> Result<Sweep> {
    let _olap = super::lock(engine);
    sweep_locked(engine)
}

fn sweep_locked(engine: &Engine) -> Result<Sweep> {
    let vfs = engine.vfs();
    let flushed = engine.flushed_index();
    let mut report = Sweep::default();
    for stream in [Stream::Ticks, Stream::Trades] {
        let entries = catalog::all(engine, stream)?;
        let root = engine.dir().join(super::OLAP_DIR).join(stream.name());
        if !vfs.exists(&root)? {
            continue;
        }
        for day_dir in vfs.list(&root)? {
            let day_path = root.join(&day_dir);
            for inst_dir in vfs.list(&day_path)? {
                let rel = format!("{}/{}/{day_dir}/{inst_dir}", super::OLAP_DIR, stream.name());
                let parts: Vec<&catalog::CatalogEntry> =
                    entries.iter().filter(|e| e.dir() == rel).collect();
                // Every part of a partition is removed at once; the files go only when no
                // part is live and the removal is flushed.
                let deletable = parts
                    .iter()
                    .all(|e| e.removed_at.is_some_and(|at| at <= flushed));
                if deletable {
                    tracing::info!(partition = %rel, "deleting partition files");
                    vfs.remove_dir_all(&day_path.join(&inst_dir))?;
                    report.partitions_deleted += 1;
                } else {
                    report.stray_files_deleted +=
                        sweep_strays(engine, &day_path.join(&inst_dir), &parts)?;
                }
            }
            if vfs.list(&day_path)?.is_empty() {
                vfs.remove_dir_all(&day_path)?;
            }
        }
    }
    Ok(report)
}

/// Deletes the files in a live partition's directory that none of its `parts` names: readers
/// of the directory (pyarrow, duckdb) must see exactly the committed parts.
fn sweep_strays(
    engine: &Engine,
    dir: &std::path::Path,
    parts: &[&catalog::CatalogEntry],
) -> Result<usize> {
    let vfs = engine.vfs();
    let mut deleted = 0;
    for name in vfs.list(dir)? {
        let known = parts
            .iter()
            .any(|e| e.file.rsplit('/').next() == Some(name.as_str()));
        if !known {
            tracing::info!(file = %dir.join(&name).display(), "deleting an uncommitted part file");
            vfs.remove(&dir.join(&name))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_count_back_over_trading_days_and_log_indexes() {
        let cal = TradingCalendar::builtin();
        let keep = RetentionConfig {
            keep_trading_days: Some(3),
            keep_log_entries: Some(1000),
        };
        // Monday 2024-12-09: keep it, Friday the 6th and Thursday the 5th.
        let p = keep.policy(&cal, 20241209, 5000);
        assert_eq!(p.drop_days_before, Some(20241205));
        assert_eq!(p.drop_journal_before, Some(4001));
        // Fewer entries than the setting keeps: nothing to drop.
        assert_eq!(keep.policy(&cal, 20241209, 10).drop_journal_before, Some(0));
        // One trading day kept is the current one.
        let one = RetentionConfig {
            keep_trading_days: Some(1),
            keep_log_entries: Some(0),
        };
        let p = one.policy(&cal, 20241209, 5000);
        assert_eq!(p.drop_days_before, Some(20241209));
        assert_eq!(p.drop_journal_before, None);
        assert_eq!(
            RetentionConfig::default().policy(&cal, 20241209, 5000),
            RetentionPolicy::default()
        );
    }

    #[test]
    fn settings_read_from_toml() {
        let s: RetentionConfig =
            toml::from_str("keep_trading_days = 20\nkeep_log_entries = 5000000\n").unwrap();
        assert_eq!(s.keep_trading_days, Some(20));
        assert!(toml::from_str::<RetentionConfig>("keep_days = 3").is_err());
    }
}
