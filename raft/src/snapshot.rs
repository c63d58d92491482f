//! Snapshots are engine checkpoints.
//!
//! A snapshot's files are a checkpoint in the node's checkpoint store (hard-linked tables,
//! Parquet files, manifest); its description (the last applied log id and the membership) is the
//! checkpoint's blob, read from the checkpoint's own tables when it is made, so it is exact
//! however many entries were applied meanwhile.
//!
//! ```text
//! blob  version u8 (1) | applied log id | stored membership      (see `codec`)
//! ```

use std::sync::Arc;

use qastore_lsm::checkpoint::{CheckpointInfo, CheckpointLease};

use crate::codec;
use crate::error::CodecError;
use crate::types::{LogId, SnapshotMeta, StoredMembership};

const BLOB_VERSION: u8 = 1;

/// The files of a snapshot: a checkpoint, pinned (not deleted) while this handle lives.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    lease: Arc<CheckpointLease>,
}

impl SnapshotFiles {
    /// Pins `lease`'s checkpoint as a snapshot's files.
    pub fn new(lease: CheckpointLease) -> Self {
        SnapshotFiles {
            lease: Arc::new(lease),
        }
    }

    /// The checkpoint.
    pub fn info(&self) -> &CheckpointInfo {
        self.lease.info()
    }

    /// The lease, for reading the files in chunks.
    pub fn lease(&self) -> &CheckpointLease {
        &self.lease
    }
}

/// Encodes the Raft state a checkpoint carries.
pub fn encode_blob(applied: Option<&LogId>, membership: &StoredMembership) -> Vec<u8> {
    let mut out = vec![BLOB_VERSION];
    out.extend_from_slice(&codec::encode_log_id(applied));
    out.extend_from_slice(&codec::encode_stored_membership(membership));
    out
}

/// Decodes [`encode_blob`] into a snapshot's description.
pub fn decode_blob(blob: &[u8]) -> Result<SnapshotMeta, CodecError> {
    let Some((&version, rest)) = blob.split_first() else {
        return Err(CodecError::new("snapshot state", "empty"));
    };
    if version != BLOB_VERSION {
        return Err(CodecError::new(
            "snapshot state",
            format!("unknown version {version}"),
        ));
    }
    let id_len = if rest.first() == Some(&1) { 17 } else { 1 };
    if rest.len() < id_len {
        return Err(CodecError::new("snapshot state", "truncated"));
    }
    let last_log_id = codec::decode_log_id(&rest[..id_len])?;
    let last_membership = codec::decode_stored_membership(&rest[id_len..])?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{log_id, Membership, PeerNode};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn the_blob_round_trips() {
        let m = Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, PeerNode::new("a:1", "a:2")),
                (2, PeerNode::new("b:1", "b:2")),
                (3, PeerNode::new("c:1", "c:2")),
            ]),
        )
        .unwrap();
        let sm = StoredMembership::new(Some(log_id(1, 3)), m);
        for applied in [None, Some(log_id(2, 9))] {
            let meta = decode_blob(&encode_blob(applied.as_ref(), &sm)).unwrap();
            assert_eq!(meta.last_log_id, applied);
            assert_eq!(meta.last_membership, sm);
        }
        assert!(decode_blob(&[]).is_err());
        assert!(decode_blob(&[9, 0]).is_err());
    }
}
