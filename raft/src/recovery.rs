//! Offline recovery of a node's data directory, run before the node starts:
//!
//! * [`force_new_cluster`]: quorum is lost for good. The node's log gets one more entry, a
//!   membership naming this node as the only voter, under a term above any it has seen, so
//!   that on start it elects itself and commits everything its log holds (like etcd's
//!   `--force-new-cluster`). New nodes are then added to it as learners.
//! * [`restore_backup`]: a backup (a checkpoint written by `Admin.Backup`) becomes the state
//!   of a new data directory, which then forms a new one-node cluster the same way.
//!
//! Both refuse a data directory of another cluster or node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use qastore_lsm::checkpoint::{self, CheckpointStore, EngineHome};
use qastore_lsm::vfs::VfsRef;
use qastore_lsm::wal::{Wal, WalConfig};

use crate::codec;
use crate::error::{Error, Result};
use crate::identity;
use crate::snapshot::decode_blob;
use crate::state_machine::{checkpoints_dir, engine_home_dir, StateMachine};
use crate::types::{log_id, Entry, Membership, NodeId, PeerNode, Vote};

/// What a forced new cluster starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForcedCluster {
    /// The index of the membership entry that makes this node the only voter.
    pub membership_index: u64,
    /// Its term.
    pub term: u64,
}

/// Rewrites the membership of the (stopped) node in `data_dir` so that it alone forms the
/// cluster, keeping all its data. Blocking.
pub fn force_new_cluster(
    vfs: VfsRef,
    data_dir: &Path,
    cluster_id: &str,
    node_id: NodeId,
    me: PeerNode,
) -> Result<ForcedCluster> {
    identity::claim(vfs.as_ref(), data_dir, cluster_id, node_id)?;
    let applied = crate::state_machine::applied_in(vfs.clone(), data_dir)?;
    let wal = Wal::open(vfs, data_dir.join("wal"), WalConfig::default())?;
    let meta = wal.meta();
    let vote_term = match &meta.vote {
        Some(b) => codec::decode_vote(b)?.leader_id.term,
        None => 0,
    };
    // The log continues after whatever is newest: its own last entry, what it purged, or
    // what the engine applied (a restored backup has no log at all).
    let mut last = wal.last_log_id().map(|l| log_id(l.term, l.index));
    for other in [meta.last_purged.map(|l| log_id(l.term, l.index)), applied] {
        if other.is_some_and(|o| last.is_none_or(|l| o.index > l.index)) {
            last = other;
        }
    }
    if let (Some(a), true) = (applied, wal.last_log_id().is_none()) {
        // No log: record the applied entry as purged, so the log continues right after it.
        wal.purge_up_to(qastore_lsm::wal::LogId {
            term: a.leader_id.term,
            index: a.index,
        })?;
    }
    let last_term = last.map_or(0, |l| l.leader_id.term);
    let term = vote_term.max(last_term) + 1;
    let index = last.map_or(0, |l| l.index + 1);
    let membership = Membership::new(
        vec![BTreeSet::from([node_id])],
        BTreeMap::from([(node_id, me)]),
    )
    .map_err(Error::raft)?;
    let entry =
        <Entry as openraft::entry::RaftEntry>::new_membership(log_id(term, index), membership);
    wal.append_sync(&[codec::to_wal(&entry)])?;
    wal.save_vote(codec::encode_vote(&Vote::new(term, node_id)))?;
    wal.sync()?;
    tracing::warn!(
        node_id,
        index,
        term,
        "membership rewritten: this node alone forms the cluster"
    );
    Ok(ForcedCluster {
        membership_index: index,
        term,
    })
}

/// Makes the backup in `backup_dir` the state of the new data directory `data_dir` (which must
/// not exist or be empty), as node `node_id` of the new cluster `cluster_id`, the only voter.
/// Every file of the backup is checked against its recorded size and CRC first. Blocking.
pub fn restore_backup(
    vfs: VfsRef,
    backup_dir: &Path,
    data_dir: &Path,
    cluster_id: &str,
    node_id: NodeId,
    me: PeerNode,
) -> Result<ForcedCluster> {
    let not_empty = std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some());
    if not_empty {
        return Err(Error::InvalidArgument(format!(
            "field data_dir: {} is not empty; restore only into a new directory",
            data_dir.display()
        )));
    }
    let backup = checkpoint::verify(vfs.as_ref(), backup_dir).map_err(|e| {
        Error::InvalidArgument(format!(
            "field backup: {} is not a usable backup: {e}",
            backup_dir.display()
        ))
    })?;
    decode_blob(&backup.meta.blob)?;
    std::fs::create_dir_all(data_dir).map_err(|e| Error::Io {
        what: format!("creating {}", data_dir.display()),
        source: e,
    })?;
    identity::claim(vfs.as_ref(), data_dir, cluster_id, node_id)?;
    let store = CheckpointStore::open(
        vfs.clone(),
        checkpoints_dir(data_dir),
        checkpoint::DEFAULT_KEEP,
    )?;
    let mut installer = store.begin_install(backup.meta.clone())?;
    const CHUNK: u64 = 1 << 20;
    for f in &backup.meta.files {
        let file = vfs.open(&backup_dir.join(&f.name))?;
        let mut offset = 0;
        while offset < f.size {
            let len = CHUNK.min(f.size - offset) as usize;
            let mut buf = vec![0; len];
            file.read_at(offset, &mut buf)?;
            installer.write(&f.name, offset, &buf)?;
            offset += len as u64;
        }
    }
    let info = installer.finish()?;
    let mut home = EngineHome::open(vfs.clone(), engine_home_dir(data_dir))?;
    home.switch_to(&info)?;
    drop(home);
    force_new_cluster(vfs, data_dir, cluster_id, node_id, me)
}

/// Checks, before Raft starts, that the engine and the log together still hold every entry:
/// the log keeps only what follows its purge point, so the engine (or the newest checkpoint,
/// which Raft installs when it is ahead of the engine) must hold at least up to that point.
/// Otherwise the entries in between are lost, and the node refuses to start rather than run
/// with a state that silently lacks them.
pub(crate) fn check_engine_against_log(
    data_dir: &Path,
    sm: &StateMachine,
    wal: &Wal,
) -> Result<()> {
    let Some(purged) = wal.meta().last_purged else {
        return Ok(());
    };
    let applied = sm.applied().map_or(0, |a| a.index);
    if applied >= purged.index {
        return Ok(());
    }
    let checkpoint = match sm.checkpoints().latest()? {
        Some(info) => decode_blob(&info.meta.blob)?
            .last_log_id
            .map(|l| (l.index, info.dir)),
        None => None,
    };
    if let Some((index, dir)) = checkpoint.as_ref().filter(|(i, _)| *i >= purged.index) {
        tracing::warn!(
            engine = applied,
            log_purged = purged.index,
            checkpoint = index,
            dir = %dir.display(),
            "the engine is behind the log's purge point; the newest checkpoint covers it"
        );
        return Ok(());
    }
    Err(Error::Identity {
        dir: data_dir.display().to_string(),
        reason: format!(
            "the engine holds entries up to index {applied} and the newest checkpoint up to {}, \
             but the log was purged up to {}: entries {} to {} are lost (engine directory {}); \
             refusing to start",
            checkpoint.map_or(0, |(i, _)| i),
            purged.index,
            applied + 1,
            purged.index,
            sm.engine()?.dir().display(),
        ),
    })
}
