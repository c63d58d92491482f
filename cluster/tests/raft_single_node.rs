//! One node on its own: idempotent writes, bad input, the committed tail re-applied exactly
//! once after a power cut, and system commands carried out at apply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use qastore_cluster::ExchangeNode;
use qastore_exchange::keys::Stream;
use qastore_exchange::olap;
use qastore_exchange::query::Queries;
use qastore_exchange::record::Record;
use qastore_exchange::{Ack, EncodedWrite, Response, StreamKind, SystemCommand, WriteCommand};
use qastore_lsm::vfs::{PowerCut, SimVfs};
use qastore_raft::{Error, RaftNodeConfig};
use support::{
    batches, config, free_port, init_tracing, journal_outcomes, ExchangeCommands, SERIAL, WAIT,
};

async fn single(cfg: RaftNodeConfig, vfs: Option<&SimVfs>) -> ExchangeNode {
    let node = match vfs {
        Some(v) => ExchangeNode::start_with_vfs(cfg, v.shared()).await.unwrap(),
        None => ExchangeNode::start(cfg).await.unwrap(),
    };
    node
}

async fn initialized(cfg: RaftNodeConfig, vfs: Option<&SimVfs>) -> ExchangeNode {
    let node = single(cfg, vfs).await;
    node.initialize(BTreeMap::from([(node.id(), node.peer_node())]))
        .await
        .unwrap();
    node.wait_for_leader(WAIT).await.unwrap();
    wait_leader_role(&node).await;
    node
}

async fn wait_leader_role(node: &ExchangeNode) {
    for _ in 0..500 {
        if node.status().role == qastore_raft::Role::Leader {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the node did not become leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once_and_gets_the_first_answer() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = initialized(config("c", 1, dir.path(), free_port()), None).await;
    let data = batches(2, 20241202);
    let cmd = WriteCommand::new("gw-1", 42, Ack::Quorum, data[0].clone());
    let first = node.write_cmd(cmd.clone(), WAIT).await.unwrap();
    let Response::Written { outcomes } = &first.response else {
        panic!("{first:?}");
    };
    let retry = node.write_cmd(cmd.clone(), WAIT).await.unwrap();
    assert_eq!(
        retry.response,
        Response::Duplicate {
            original_index: first.log_index,
            outcomes: outcomes.clone()
        }
    );
    assert!(
        retry.log_index > first.log_index,
        "the retry is an entry of its own"
    );
    // The records are there once.
    let engine = node.engine().unwrap();
    let q = Queries::new(&engine);
    let journal = q.journal(0, 100_000).unwrap();
    assert_eq!(journal.len(), data[0].len(), "applied once");
    // The same request id with other records is refused, and changes nothing.
    let reused = WriteCommand::new("gw-1", 42, Ack::Quorum, data[1].clone());
    let out = node.write_cmd(reused, WAIT).await.unwrap();
    assert_eq!(
        out.response,
        Response::RequestIdReused {
            original_index: first.log_index
        }
    );
    assert_eq!(
        Queries::new(&node.engine().unwrap())
            .journal(0, 100_000)
            .unwrap()
            .len(),
        data[0].len()
    );
    // Another client may use the same number.
    let other = WriteCommand::new("gw-2", 42, Ack::All, data[1].clone());
    let out = node.write_cmd(other, WAIT).await.unwrap();
    assert!(matches!(out.response, Response::Written { .. }));
    assert_eq!(out.all_acked, Some(true), "a single voter holds it");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_writes_are_refused_before_the_log_with_the_field_named() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let fresh = single(config("c", 1, dir.path(), free_port()), None).await;
    let good = batches(1, 20241202).remove(0);
    // Not initialized: no leader to take it.
    let e = fresh
        .write_cmd(WriteCommand::new("gw", 1, Ack::Quorum, good.clone()), WAIT)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotLeader { leader: None }), "{e}");
    fresh.shutdown().await.unwrap();
    drop(fresh);

    let dir = tempfile::tempdir().unwrap();
    let node = initialized(config("c", 1, dir.path(), free_port()), None).await;
    let before = node.status().last_log_index;
    // The checks a node's write path runs before proposing: a refused write never reaches
    // the log.
    let mut bad = good.clone();
    if let Some(Record::Tick(t)) = bad.iter_mut().find(|r| matches!(r, Record::Tick(_))) {
        t.last_price = f64::NAN;
    }
    for (client, records, field) in [
        ("gw", bad, "last_price"),
        ("", good.clone(), "client_id"),
        ("gw", Vec::new(), "records"),
    ] {
        let e = EncodedWrite::new(client, 1, Ack::Quorum, records)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
    assert_eq!(
        node.status().last_log_index,
        before,
        "nothing reached the log"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_power_cut_the_committed_tail_is_re_applied_exactly_once() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let vfs = SimVfs::new(7);
    let dir = std::path::PathBuf::from("/node1");
    let port = free_port();
    let node = initialized(config("c", 1, &dir, port), Some(&vfs)).await;
    let data = batches(30, 20241203);
    let mut written = Vec::new();
    for (i, b) in data.iter().enumerate() {
        let out = node
            .write_cmd(
                WriteCommand::new("gw", i as u64 + 1, Ack::Quorum, b.clone()),
                WAIT,
            )
            .await
            .unwrap();
        let Response::Written { outcomes } = out.response else {
            panic!("{out:?}")
        };
        written.push((out.log_index, outcomes));
        if i == 10 {
            node.engine().unwrap().flush().unwrap();
        }
    }
    let engine = node.engine().unwrap();
    assert!(
        engine.flushed_index() < engine.applied_index(),
        "part of the state must be only in memory"
    );
    drop(engine);
    vfs.power_cut(PowerCut::DropUnsynced);
    let _ = node.shutdown().await;
    drop(node);
    tokio::time::sleep(Duration::from_millis(200)).await;
    vfs.restart();

    let node = single(config("c", 1, &dir, port), Some(&vfs)).await;
    wait_leader_role(&node).await;
    let last = written.last().unwrap().0;
    for _ in 0..500 {
        if node.status().applied.unwrap_or(0) >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let engine = node.engine().unwrap();
    for (index, outcomes) in &written {
        let got = journal_outcomes(&engine, *index);
        assert_eq!(&got, outcomes, "the write at {index} after the power cut");
    }
    drop(engine);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_commands_convert_days_and_bad_ones_are_refused_alike() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = initialized(config("c", 1, dir.path(), free_port()), None).await;
    for (i, b) in batches(20, 20241202).into_iter().enumerate() {
        node.write_cmd(WriteCommand::new("gw", i as u64 + 1, Ack::Quorum, b), WAIT)
            .await
            .unwrap();
    }
    let (_, r) = node
        .propose_cmd(
            SystemCommand::ConvertDay {
                stream: StreamKind::Ticks,
                trading_day: 20241202,
            },
            WAIT,
        )
        .await
        .unwrap();
    let Response::Converted {
        partitions, rows, ..
    } = r
    else {
        panic!("{r:?}")
    };
    assert!(partitions > 0 && rows > 0);
    let engine = node.engine().unwrap();
    assert!(!olap::pending_days(&engine, Stream::Ticks)
        .unwrap()
        .contains(&20241202));
    drop(engine);
    let (_, r) = node
        .propose_cmd(
            SystemCommand::SetCalendar {
                toml: "not a calendar".into(),
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(matches!(r, Response::Refused { .. }), "{r:?}");
    let (_, r) = node
        .propose_cmd(
            SystemCommand::SetClusterSettings {
                toml: "olap_conversion = false\n".into(),
            },
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r, Response::SettingsChanged);
    assert!(!node.app().settings().olap_conversion);
    node.shutdown().await.unwrap();
}
