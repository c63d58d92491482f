//! The engine's compaction threads and manual compaction.

use std::collections::HashSet;
use std::sync::Arc;

use super::stats::Counters;
use super::Inner;
use crate::compaction::job::{self, Context, Outcome};
use crate::compaction::picker::{self, Pick};
use crate::error::{Error, Result};
use crate::version::{Version, NUM_LEVELS};

/// Which files are being compacted, and where each level's rotation stands.
#[derive(Debug, Default)]
pub(super) struct CompactionState {
    busy: HashSet<u64>,
    pointers: [Vec<u8>; NUM_LEVELS],
    running: usize,
}

impl Inner {
    fn claim(&self, pick: Option<Pick>, st: &mut CompactionState) -> Option<Pick> {
        let pick = pick?;
        st.busy.extend(pick.all_files().map(|f| f.desc.number));
        st.running += 1;
        Some(pick)
    }

    fn release(&self, numbers: &[u64]) {
        let mut st = self.compaction.lock();
        for n in numbers {
            st.busy.remove(n);
        }
        st.running -= 1;
    }

    /// The next compaction the scores ask for, claimed for the caller.
    ///
    /// The version is read while the compaction state is locked: a compaction publishes its
    /// version before it releases its files, so a version read earlier could still hold files
    /// that were just compacted (and are no longer busy), and the same data would be compacted
    /// twice into overlapping tables.
    fn next_pick(&self) -> Option<(Pick, Arc<Version>)> {
        let mut st = self.compaction.lock();
        let version = self.versions.lock().current();
        let CompactionState { busy, pointers, .. } = &mut *st;
        let pick = picker::pick(&version, &self.opts.level_shape(), busy, pointers);
        let pick = self.claim(pick, &mut st)?;
        Some((pick, version))
    }

    /// Runs a claimed compaction and releases it.
    fn run_pick(&self, pick: Pick, version: Arc<Version>) -> Result<Outcome> {
        let span = tracing::info_span!(
            "compaction",
            level = pick.level,
            inputs = pick.inputs.len(),
            next_inputs = pick.next_inputs.len(),
            moves = pick.moves.len()
        );
        let _enter = span.enter();
        let publish = |v| self.publish(v);
        let stopping = || self.compact_wakeup.is_shutdown();
        let ctx = Context {
            vfs: &self.vfs,
            dir: &self.dir,
            table: &self.opts.table,
            target_file_bytes: self.opts.target_file_bytes,
            partition_prefix: self.opts.table_partition_prefix,
            versions: &self.versions,
            publish: &publish,
            stopping: &stopping,
        };
        let numbers: Vec<u64> = pick.all_files().map(|f| f.desc.number).collect();
        let result = job::run(&ctx, &pick, &version);
        // Let go of the inputs before saying the compaction is over: obsolete ones are deleted
        // as their last holder drops them.
        drop((pick, version));
        self.release(&numbers);
        let outcome = result?;
        let c = &self.counters;
        Counters::add(&c.compactions, 1);
        Counters::add(&c.trivial_moves, u64::from(outcome.trivial_move));
        Counters::add(&c.compaction_bytes_read, outcome.bytes_read);
        Counters::add(&c.compaction_bytes_written, outcome.bytes_written);
        tracing::debug!(
            read = outcome.bytes_read,
            written = outcome.bytes_written,
            trivial = outcome.trivial_move,
            "compaction finished"
        );
        self.progress.notify(usize::MAX);
        Ok(outcome)
    }

    /// Whether compaction has nothing to do and nothing running.
    pub(super) fn compaction_idle(&self) -> bool {
        let st = self.compaction.lock();
        let version = self.versions.lock().current();
        let mut pointers = st.pointers.clone();
        st.running == 0
            && picker::pick(&version, &self.opts.level_shape(), &st.busy, &mut pointers).is_none()
    }

    /// Moves all data down to the deepest level that holds any (at least level 1), rewriting
    /// every table on the way, so deletes and overwritten versions are dropped.
    pub(super) fn compact_all(&self) -> Result<()> {
        // Background compactions may push data deeper meanwhile; they only ever move data
        // down, so repeating until one level holds everything converges.
        loop {
            let (deepest, settled) = {
                let v = self.versions.lock().current();
                let deepest = (1..NUM_LEVELS)
                    .rev()
                    .find(|&l| !v.levels[l].is_empty())
                    .unwrap_or(1);
                (deepest, v.levels[..deepest].iter().all(Vec::is_empty))
            };
            if settled {
                return Ok(());
            }
            for level in 0..deepest {
                self.compact_level_down(level)?;
            }
        }
    }

    /// Compacts `level` into the next one until it is empty.
    fn compact_level_down(&self, level: usize) -> Result<()> {
        loop {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            let listener = self.progress.listen();
            // Version read under the compaction lock, as in `next_pick`.
            let (pick, version) = {
                let mut st = self.compaction.lock();
                let version = self.versions.lock().current();
                if version.levels[level].is_empty() {
                    return Ok(());
                }
                let pick =
                    picker::pick_whole_level(&version, &self.opts.level_shape(), level, &st.busy);
                (self.claim(pick, &mut st), version)
            };
            match pick {
                Some(pick) => {
                    self.run_pick(pick, version)?;
                }
                // A background compaction holds some of these files: wait for it.
                None => {
                    use event_listener::Listener;
                    listener.wait();
                }
            }
        }
    }
}

/// A compaction thread: picks and runs compactions until none is needed, each time it is
/// woken (after flushes, after other compactions, at open).
pub(super) fn worker(inner: Arc<Inner>) {
    while inner.compact_wakeup.wait() {
        loop {
            if inner.compact_wakeup.is_shutdown() || inner.failure().is_some() {
                break;
            }
            let Some((pick, version)) = inner.next_pick() else {
                break;
            };
            // Let another compaction thread look for work that does not overlap this one.
            inner.compact_wakeup.raise();
            match inner.run_pick(pick, version) {
                Ok(_) => {}
                Err(Error::Closed(_)) if inner.compact_wakeup.is_shutdown() => break,
                Err(e) => {
                    tracing::error!(error = %e, "compaction failed; the engine stops taking writes");
                    inner.fail(e);
                    break;
                }
            }
        }
    }
}
