//! Connections from this node to other nodes' client APIs: to forward writes to the leader
//! and to gather the cluster's status. One lazily connected channel per address, reused.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use qastore_proto::v1::admin_client::AdminClient;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::store_client::StoreClient;
use qastore_security::tls::ReloadingTls;
use std::sync::Arc;
use tonic::transport::Channel;

use crate::error::ApiError;

/// Channels to other nodes' client APIs.
#[derive(Debug, Default)]
pub struct ApiPeers {
    /// Connections by address, with the generation of the TLS material they were made with.
    channels: Mutex<HashMap<String, (u64, Channel)>>,
    max_message_bytes: usize,
    tls: Option<Arc<ReloadingTls>>,
}

impl ApiPeers {
    /// Channels that carry messages up to `max_message_bytes`, over mutual TLS with `tls`.
    pub fn new(max_message_bytes: usize, tls: Option<Arc<ReloadingTls>>) -> Self {
        ApiPeers {
            channels: Mutex::new(HashMap::new()),
            max_message_bytes,
            tls,
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, ApiError> {
        let tls = self.tls.as_deref();
        // Connections made before the certificates changed are made again.
        let generation = tls.map_or(0, ReloadingTls::generation);
        let mut channels = self.channels.lock();
        if let Some((made_with, c)) = channels.get(addr) {
            if *made_with == generation {
                return Ok(c.clone());
            }
        }
        let channel = qastore_security::tls::endpoint(addr, tls)
            .map_err(|e| ApiError::Internal(format!("node address: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_string(), (generation, channel.clone()));
        Ok(channel)
    }

    /// The store API of the node at `addr`.
    pub fn store(&self, addr: &str) -> Result<StoreClient<Channel>, ApiError> {
        Ok(StoreClient::new(self.channel(addr)?)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    /// The admin API of the node at `addr`.
    pub fn admin(&self, addr: &str) -> Result<AdminClient<Channel>, ApiError> {
        Ok(AdminClient::new(self.channel(addr)?)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    /// The feed API of the node at `addr`.
    pub fn feed(&self, addr: &str) -> Result<FeedClient<Channel>, ApiError> {
        Ok(FeedClient::new(self.channel(addr)?)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }
}
