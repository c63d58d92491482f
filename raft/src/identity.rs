//! Which node a data directory belongs to.
//!
//! `<data dir>/NODE` records the cluster id and the node id the directory was created for,
//! written crash-atomically with a checksum. A node refuses to start in a directory of another
//! node or cluster: a copied or mixed-up directory would otherwise rejoin under the wrong id.

use std::path::Path;

use qastore_lsm::vfs::{write_atomic, Vfs};

use crate::error::{Error, Result};
use crate::types::NodeId;

/// The identity file's name.
pub const NODE_FILE: &str = "NODE";

/// Whom a data directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The cluster.
    pub cluster_id: String,
    /// The node.
    pub node_id: NodeId,
}

/// Checks a cluster id: 1 to 64 characters of `A-Z a-z 0-9 . _ -` (it travels in gRPC
/// metadata and in file contents).
pub fn check_cluster_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadSetting {
            name: "cluster_id",
            reason: format!("{id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"),
        })
    }
}

impl NodeIdentity {
    fn encode(&self) -> String {
        let body = format!(
            "qastore-node 1\ncluster_id {}\nnode_id {}\n",
            self.cluster_id, self.node_id
        );
        let crc = crc32fast::hash(body.as_bytes());
        format!("{body}crc32 {crc:08x}\n")
    }

    fn decode(text: &str) -> Option<NodeIdentity> {
        let (body, crc_line) = text.rsplit_once("crc32 ")?;
        let crc = u32::from_str_radix(crc_line.trim_end(), 16).ok()?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "qastore-node 1" {
            return None;
        }
        let cluster_id = lines.next()?.strip_prefix("cluster_id ")?.to_string();
        let node_id = lines.next()?.strip_prefix("node_id ")?.parse().ok()?;
        Some(NodeIdentity {
            cluster_id,
            node_id,
        })
    }
}

/// Makes sure `dir` belongs to node `node_id` of cluster `cluster_id`: records it in a new
/// directory, checks it in an existing one.
pub fn claim(vfs: &dyn Vfs, dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<()> {
    check_cluster_id(cluster_id)?;
    let want = NodeIdentity {
        cluster_id: cluster_id.to_string(),
        node_id,
    };
    let path = dir.join(NODE_FILE);
    let where_ = dir.display().to_string();
    if vfs.exists(&path)? {
        let raw = vfs.read_all(&path)?;
        let found = std::str::from_utf8(&raw)
            .ok()
            .and_then(NodeIdentity::decode)
            .ok_or_else(|| Error::Identity {
                dir: where_.clone(),
                reason: format!("{NODE_FILE} is damaged"),
            })?;
        if found != want {
            return Err(Error::Identity {
                dir: where_,
                reason: format!(
                    "it belongs to node {} of cluster {:?}, not node {node_id} of cluster {cluster_id:?}",
                    found.node_id, found.cluster_id
                ),
            });
        }
        return Ok(());
    }
    vfs.create_dir_all(dir)?;
    // Data without an identity file is not a new directory: refuse rather than adopt it.
    let present = vfs.list(dir)?;
    if present.iter().any(|n| n == "wal" || n == "engine") {
        return Err(Error::Identity {
            dir: where_,
            reason: format!("it holds node data but no {NODE_FILE} file"),
        });
    }
    write_atomic(vfs, &path, want.encode().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_lsm::vfs::SimVfs;

    #[test]
    fn a_directory_belongs_to_one_node_of_one_cluster() {
        let vfs = SimVfs::new(3);
        let dir = Path::new("/n1");
        claim(&vfs, dir, "prod-1", 1).unwrap();
        claim(&vfs, dir, "prod-1", 1).unwrap();
        let e = claim(&vfs, dir, "prod-1", 4).unwrap_err().to_string();
        assert!(e.contains("belongs to node 1"), "{e}");
        assert!(claim(&vfs, dir, "prod-2", 1).is_err());
        assert!(claim(&vfs, Path::new("/n2"), "bad id!", 2).is_err());
    }

    #[test]
    fn damage_and_orphaned_data_are_refused() {
        let vfs = SimVfs::new(4);
        let dir = Path::new("/n1");
        claim(&vfs, dir, "c", 1).unwrap();
        let path = dir.join(NODE_FILE);
        let mut raw = vfs.read_all(&path).unwrap().to_vec();
        raw[20] ^= 1;
        write_atomic(&vfs, &path, &raw).unwrap();
        assert!(claim(&vfs, dir, "c", 1).is_err());
        let other = Path::new("/n3");
        vfs.create_dir_all(&other.join("wal")).unwrap();
        let e = claim(&vfs, other, "c", 3).unwrap_err().to_string();
        assert!(e.contains("no NODE file"), "{e}");
    }
}
