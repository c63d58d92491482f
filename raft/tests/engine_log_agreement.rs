//! A node whose engine lost entries its log has already purged refuses to start, naming the
//! gap and the directories, instead of running with a state that silently lacks them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use qastore_lsm::vfs::OsVfs;
use qastore_lsm::wal::{LogId, Wal, WalConfig};
use support::{config, free_port, init_tracing, put, ToyNode, SERIAL, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_behind_the_logs_purge_point_refuses_to_start() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("c", 1, dir.path(), free_port());
    let node = ToyNode::start(cfg.clone()).await.unwrap();
    node.initialize(BTreeMap::from([(node.id(), node.peer_node())]))
        .await
        .unwrap();
    node.wait_for_leader(WAIT).await.unwrap();
    let mut last = 0;
    for i in 0..3 {
        let cmd = put(&format!("k{i}"), "v");
        last = node.write(cmd, false, WAIT).await.unwrap().log_index;
    }
    // Nothing was flushed: after a restart the engine holds none of these entries, and the log
    // is all that has them. Purging the log past them loses them, as a manifest edit dropped
    // after its flush's entries were purged would.
    node.shutdown().await.unwrap();
    drop(node);
    {
        let wal = Wal::open(
            OsVfs::shared(),
            dir.path().join("wal"),
            WalConfig::default(),
        )
        .unwrap();
        let term = wal.last_log_id().unwrap().term;
        wal.purge_up_to(LogId { term, index: last }).unwrap();
    }

    let err = ToyNode::start(cfg).await.unwrap_err().to_string();
    assert!(err.contains(&format!("purged up to {last}")), "{err}");
    assert!(err.contains("are lost"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}
