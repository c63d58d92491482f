//! Connections from this node to other nodes' client APIs: to forward writes to the leader
//! and to gather the cluster's status. One lazily connected channel per address, reused.

use std::sync::Arc;
use std::time::Duration;

use qastore_proto::v1::admin_client::AdminClient;
use qastore_proto::v1::feed_client::FeedClient;
use qastore_proto::v1::store_client::StoreClient;
use qastore_security::tls::{Channels, ReloadingTls};
use tonic::transport::Channel;

use crate::error::ApiError;

/// Channels to other nodes' client APIs.
#[derive(Debug)]
pub struct ApiPeers {
    channels: Channels,
    max_message_bytes: usize,
}

impl ApiPeers {
    /// Channels that carry messages up to `max_message_bytes`, over mutual TLS with `tls`.
    pub fn new(max_message_bytes: usize, tls: Option<Arc<ReloadingTls>>) -> Self {
        ApiPeers {
            channels: Channels::new(tls, |e| {
                e.connect_timeout(Duration::from_secs(1)).tcp_nodelay(true)
            }),
            max_message_bytes,
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, ApiError> {
        self.channels
            .get(addr)
            .map_err(|e| ApiError::Internal(format!("node address: {e}")))
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
