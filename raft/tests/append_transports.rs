//! The two ways append streams travel, on the same peer port: the append stream's own framing
//! and gRPC. A cluster whose nodes use different ones replicates whichever leads; the port tells
//! the protocols apart, refuses a stranger's hello as it refuses a stranger's gRPC call, and
//! closes a connection that speaks neither.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use qastore_raft::append_stream::{Caller, LinkPool, OpenError};
use qastore_raft::{AppendTransport, NodeId};
use support::{put, write_one, Cluster, SERIAL, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn raft_addr(c: &Cluster, id: NodeId) -> String {
    format!("127.0.0.1:{}", c.ports[&id])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_on_different_transports_replicate_whichever_leads() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::empty(support::settings());
    c.start_node_with(1, |cfg| cfg.raft.append_transport = AppendTransport::Grpc)
        .await;
    c.start_node(2).await;
    c.start_node(3).await;
    c.initialize().await;
    let mut last = 0;
    for (round, to) in [1, 2, 3, 1].into_iter().enumerate() {
        let leader = c.leader().await;
        if leader != to {
            c.nodes[&leader].transfer_leader(to).await.unwrap();
            let deadline = Instant::now() + WAIT;
            while c.leader().await != to {
                assert!(Instant::now() < deadline, "node {to} never took over");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for i in 0..20 {
            last = write_one(&c, put(&format!("k{round}-{i}"), &format!("v{round}-{i}"))).await;
        }
    }
    let hashes = c.hashes(last).await;
    let first = hashes[&1];
    assert!(
        hashes.values().all(|h| *h == first),
        "replicas differ: {hashes:?}"
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hello_from_another_cluster_or_for_another_node_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let addr = raft_addr(&c, 2);
    let pool = LinkPool::default();
    let stranger = Caller {
        cluster: "another-cluster".into(),
        node_id: 1,
    };
    match pool.take(&stranger, 2, &addr, None, WAIT).await {
        Err(OpenError::Refused(status)) => {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
            assert!(status.message().contains("another-cluster"), "{status:?}");
        }
        Err(OpenError::Io(e)) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("a node of another cluster was welcomed"),
    }
    let member = Caller {
        cluster: c.id.clone(),
        node_id: 1,
    };
    match pool.take(&member, 3, &addr, None, WAIT).await {
        Err(OpenError::Refused(status)) => {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        }
        Err(OpenError::Io(e)) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("a hello meant for node 3 was welcomed by node 2"),
    }
    assert!(
        pool.take(&member, 2, &addr, None, WAIT).await.is_ok(),
        "the right hello is welcomed"
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_speaking_neither_protocol_is_closed_and_the_cluster_carries_on() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::three().await;
    let addr = raft_addr(&c, 2);
    let mut junk = tokio::net::TcpStream::connect(&addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, junk.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the port kept a connection speaking neither protocol: {read:?}"
    );
    let index = write_one(&c, put("after", "junk")).await;
    let hashes = c.hashes(index).await;
    assert_eq!(hashes.len(), 3);
    c.stop_all().await;
}
