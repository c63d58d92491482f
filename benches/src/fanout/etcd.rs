//! The etcd side: the three-member cluster of the write comparison; records are puts under one
//! prefix (a batch is one transaction, split at etcd's limit of operations per transaction),
//! subscribers are prefix watches on one member. A resuming watch goes on at the next member
//! from the revision after the last one it delivered.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Txn, TxnOp, WatchOptions};
use futures::future::try_join_all;

use super::stamp::{self, Stamp};
use super::tap::Tap;
use super::{next_node, FeedSystem, Start, Subscription};
use crate::versus::etcd::EtcdCluster;
use crate::versus::System;

/// The prefix every record is written under and watched.
const PREFIX: &str = "/feed/";

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// The largest watch response the subscribers accept.
const MAX_WATCH_RESPONSE: usize = 1 << 30;

/// Distinct keys the records rotate over.
const KEYS: u64 = 1_000_000;

fn key(seq: u64) -> String {
    format!("{PREFIX}{:07}", seq % KEYS)
}

impl FeedSystem for EtcdCluster {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn nodes(&self) -> usize {
        System::nodes(self)
    }

    async fn placement(&self) -> Result<Vec<usize>, String> {
        let leader = System::leader(self).await.ok_or("etcd: no leader")?;
        let mut order: Vec<usize> = (0..System::nodes(self)).filter(|n| *n != leader).collect();
        order.push(leader);
        Ok(order)
    }

    async fn write(&self, batch: Vec<Stamp>) -> Result<(), String> {
        let client = self
            .client(self.write_node())
            .ok_or("etcd: no such member")?;
        let txns = batch.chunks(MAX_TXN_OPS).map(|chunk| {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|s| TxnOp::put(key(s.seq), stamp::encode(*s), None))
                .collect();
            let mut c = client.clone();
            async move { c.txn(Txn::new().and_then(ops)).await }
        });
        try_join_all(txns)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn subscribe(&self, node: usize, start: Start, resume: bool, tap: Arc<Tap>) -> Subscription {
        let clients: Vec<_> = (0..System::nodes(self))
            .filter_map(|n| self.client(n))
            .collect();
        Subscription::spawn(async move {
            // The next revision the watch must deliver; 0: from now on.
            let mut from = match start {
                Start::Tail => 0,
                Start::Oldest => 1,
            };
            let mut node = node;
            loop {
                watch(&clients[node], &mut from, &tap).await;
                if !resume {
                    return;
                }
                node = next_node(node, clients.len());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }

    fn kill(&self, node: usize) -> Result<(), String> {
        System::kill(self, node)
    }

    fn restart(&self, node: usize) -> Result<(), String> {
        System::restart(self, node)
    }

    async fn healthy(&self) -> bool {
        System::healthy(self).await
    }

    fn pids(&self) -> Vec<u32> {
        System::pids(self)
    }

    fn shutdown(&self) {
        System::shutdown(self)
    }
}

/// Watches the prefix at one member from revision `from` until the stream breaks, moving
/// `from` past every revision delivered.
async fn watch(client: &etcd_client::Client, from: &mut i64, tap: &Tap) {
    let mut options = WatchOptions::new().with_prefix();
    if *from > 0 {
        options = options.with_start_revision(*from);
    }
    // A watch from an old revision gets the history in one response, far over the client's
    // default 4 MiB message limit.
    let mut c = client
        .watch_client()
        .max_decoding_message_size(MAX_WATCH_RESPONSE);
    let Ok(mut stream) = c.watch(PREFIX, Some(options)).await else {
        return;
    };
    while let Ok(Some(resp)) = stream.message().await {
        if resp.canceled() {
            return;
        }
        if *from == 0 {
            // Created at the tail: everything after the revision it was created at.
            if let Some(h) = resp.header() {
                *from = h.revision() + 1;
            }
        }
        let events = resp.events();
        tap.deliver(
            events
                .iter()
                .filter_map(|e| e.kv())
                .filter_map(|kv| stamp::decode(kv.value())),
        );
        if let Some(rev) = events
            .iter()
            .filter_map(|e| e.kv())
            .map(|kv| kv.mod_revision())
            .max()
        {
            *from = (*from).max(rev + 1);
        }
    }
}
