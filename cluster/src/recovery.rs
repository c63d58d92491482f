//! Offline recovery from a node's config: `--force-new-cluster` and restoring a backup (see
//! `qastore_raft::recovery`).

use std::path::PathBuf;

use qastore_lsm::vfs::OsVfs;
use qastore_raft::recovery::{self, ForcedCluster};
use qastore_raft::PeerNode;

use crate::config::NodeConfig;

/// How the node in `config` is reached, as recorded in its new membership.
fn me(config: &NodeConfig) -> PeerNode {
    PeerNode::new(
        config
            .raft_advertise
            .clone()
            .unwrap_or_else(|| config.raft_listen.to_string()),
        config
            .api_advertise
            .clone()
            .unwrap_or_else(|| config.api_listen.to_string()),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> qastore_raft::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Makes the node of `config` the only voter of its cluster, keeping its data.
pub async fn force_new_cluster(config: &NodeConfig) -> Result<ForcedCluster, String> {
    let (dir, cid, id, me) = (
        config.data_dir.clone(),
        config.cluster_id.clone(),
        config.node_id,
        me(config),
    );
    blocking(move || recovery::force_new_cluster(OsVfs::shared(), &dir, &cid, id, me)).await
}

/// Restores `backup` into the (new) data directory of `config`, as the only voter of a new
/// cluster.
pub async fn restore(backup: PathBuf, config: &NodeConfig) -> Result<ForcedCluster, String> {
    let (dir, cid, id, me) = (
        config.data_dir.clone(),
        config.cluster_id.clone(),
        config.node_id,
        me(config),
    );
    blocking(move || recovery::restore_backup(OsVfs::shared(), &backup, &dir, &cid, id, me)).await
}
