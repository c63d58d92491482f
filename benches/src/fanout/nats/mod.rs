//! The NATS JetStream side: three clustered `nats-server -js`, one file stream with three
//! replicas; a batch is that many asynchronous publishes whose acknowledgements are awaited
//! together; subscribers are ordered push consumers (flow control, idle heartbeats) through a
//! connection to one server. When that server goes, the client reconnects to the next one and
//! the ordered consumer is created again right after the last stream sequence it delivered:
//! NATS's own resume.

mod servers;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{push, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions};
use futures::future::try_join_all;
use futures::StreamExt;

use super::stamp::{self, Stamp};
use super::tap::Tap;
use super::{FeedSystem, Start, Subscription};
pub use servers::Servers;

/// The stream's name and its subject.
const STREAM: &str = "FEED";
const SUBJECT: &str = "feed.ticks";

/// How long a status request may take before the server counts as down.
const STATUS_TIMEOUT: Duration = Duration::from_millis(1000);

/// Messages handed to the tap at once at most.
const CHUNK: usize = 1024;

/// A three-server JetStream cluster with one stream.
pub struct NatsCluster {
    servers: Servers,
    /// A client per server, connected to that server first.
    clients: Vec<Client>,
    /// Where publishes go: the stream leader when last asked.
    write_node: AtomicUsize,
}

impl NatsCluster {
    /// Starts three servers of the program at `exe`, connects to each and creates the stream.
    pub async fn start(exe: &Path) -> Result<NatsCluster, String> {
        let servers = Servers::start(exe, 3)?;
        let urls: Vec<String> = (0..3).filter_map(|i| servers.url(i)).collect();
        let mut clients = Vec::new();
        for i in 0..urls.len() {
            // This server first, the others to reconnect to.
            let order: Vec<String> = (0..urls.len())
                .map(|k| urls[(i + k) % urls.len()].clone())
                .collect();
            let mut connected = None;
            for _ in 0..100 {
                let options = ConnectOptions::new()
                    .retain_servers_order()
                    .ignore_discovered_servers()
                    .connection_timeout(Duration::from_secs(1))
                    .max_reconnects(None::<usize>);
                if let Ok(c) = options.connect(order.clone()).await {
                    connected = Some(c);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            clients.push(
                connected.ok_or_else(|| format!("nats-server at {} did not come up", urls[i]))?,
            );
        }
        let sys = NatsCluster {
            servers,
            clients,
            write_node: AtomicUsize::new(0),
        };
        sys.create_stream().await?;
        super::wait_healthy(&sys, Duration::from_secs(60)).await?;
        Ok(sys)
    }

    async fn create_stream(&self) -> Result<(), String> {
        let js = jetstream::new(self.clients[0].clone());
        let config = stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECT.into()],
            num_replicas: 3,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let mut last = String::new();
        // JetStream answers once the servers have elected a meta leader.
        for _ in 0..300 {
            match js.get_or_create_stream(config.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("creating the stream: {last}"))
    }

    /// The stream's cluster state as server `node` reports it.
    async fn stream_cluster(&self, node: usize) -> Option<stream::ClusterInfo> {
        let js = jetstream::new(self.clients.get(node)?.clone());
        let info = tokio::time::timeout(STATUS_TIMEOUT, async {
            js.get_stream(STREAM).await.ok()?.get_info().await.ok()
        })
        .await
        .ok()??;
        info.cluster
    }

    /// The server that leads the stream.
    async fn leader(&self) -> Option<usize> {
        let names = self.servers.names();
        for node in 0..self.clients.len() {
            if let Some(leader) = self.stream_cluster(node).await.and_then(|c| c.leader) {
                return names.iter().position(|n| *n == leader);
            }
        }
        None
    }
}

impl FeedSystem for NatsCluster {
    fn name(&self) -> &'static str {
        "NATS JetStream"
    }

    fn nodes(&self) -> usize {
        self.clients.len()
    }

    async fn placement(&self) -> Result<Vec<usize>, String> {
        let leader = self
            .leader()
            .await
            .ok_or("NATS: the stream has no leader")?;
        self.write_node.store(leader, Ordering::Relaxed);
        let mut order: Vec<usize> = (0..self.nodes()).filter(|n| *n != leader).collect();
        order.push(leader);
        Ok(order)
    }

    async fn write(&self, batch: Vec<Stamp>) -> Result<(), String> {
        let node = self.write_node.load(Ordering::Relaxed);
        let js = jetstream::new(self.clients[node].clone());
        let mut acks = Vec::with_capacity(batch.len());
        for s in batch {
            let ack = js
                .publish(SUBJECT, stamp::encode(s).into())
                .await
                .map_err(|e| e.to_string())?;
            acks.push(async move { ack.await });
        }
        try_join_all(acks)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn subscribe(&self, node: usize, start: Start, _resume: bool, tap: Arc<Tap>) -> Subscription {
        let client = self.clients[node].clone();
        Subscription::spawn(async move {
            if let Err(e) = consume(client, start, &tap).await {
                eprintln!("  NATS subscriber at server {}: {e}", node + 1);
            }
        })
    }

    fn kill(&self, node: usize) -> Result<(), String> {
        self.servers.kill(node)
    }

    fn restart(&self, node: usize) -> Result<(), String> {
        self.servers.spawn(node)
    }

    async fn healthy(&self) -> bool {
        for node in 0..self.clients.len() {
            if self.clients[node].connection_state() != State::Connected {
                return false;
            }
            let Some(c) = self.stream_cluster(node).await else {
                return false;
            };
            if c.leader.is_none() || c.replicas.iter().any(|p| !p.current || p.offline) {
                return false;
            }
        }
        true
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.pids()
    }

    fn shutdown(&self) {
        self.servers.shutdown()
    }
}

/// One ordered push consumer on the stream through `client`, delivering until it ends. (The
/// ordered consumer resumes by itself, so a subscriber always resumes.)
async fn consume(client: Client, start: Start, tap: &Tap) -> Result<(), String> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: match start {
                Start::Tail => DeliverPolicy::New,
                Start::Oldest => DeliverPolicy::All,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| e.to_string())?
        .ready_chunks(CHUNK);
    while let Some(chunk) = messages.next().await {
        tap.deliver(
            chunk
                .iter()
                .filter_map(|m| m.as_ref().ok())
                .filter_map(|m| stamp::decode(&m.payload)),
        );
    }
    Ok(())
}
