//! Small request helpers the process tests share: a write request, read options, a user's
//! orders from one node, the replicas' state hashes.

use qastore_client::Client;
use qastore_proto::v1 as pb;

use crate::KitError;

/// A write of `records` by `client_id` under `request_id`, acknowledged by a quorum.
pub fn write_request(
    client_id: &str,
    request_id: u64,
    records: Vec<pb::Record>,
) -> pb::WriteRequest {
    pb::WriteRequest {
        client_id: client_id.into(),
        request_id,
        records,
        ack: pb::AckLevel::Quorum as i32,
    }
}

/// Read options.
pub fn read(
    c: pb::Consistency,
    max_staleness_ms: u64,
    min_applied_index: u64,
) -> Option<pb::ReadOptions> {
    Some(pb::ReadOptions {
        consistency: c as i32,
        max_staleness_ms,
        min_applied_index,
    })
}

/// A user's orders read from node `addr`.
pub async fn orders_at(
    client: &Client,
    addr: &str,
    user: &str,
    options: Option<pb::ReadOptions>,
) -> Result<pb::ListOrdersResponse, tonic::Status> {
    let mut s = client
        .store_at(addr)
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    s.list_orders(client.request(pb::ListOrdersRequest {
        user_id: user.into(),
        only_alive: false,
        with_history: false,
        read: options,
    }))
    .await
    .map(|r| r.into_inner())
}

/// The replicas' hashes at a fresh hash mark, one per endpoint in order.
pub async fn hashes(client: &Client, endpoints: &[String]) -> Result<Vec<u64>, KitError> {
    let status = |s: tonic::Status| KitError::Cluster(format!("hashing the replicas: {s}"));
    let (_, leader) = client.find_leader().await?;
    let index = client
        .admin_at(&leader)?
        .hash_mark(client.request(pb::HashMarkRequest {}))
        .await
        .map_err(status)?
        .into_inner()
        .index;
    let mut out = Vec::new();
    for e in endpoints {
        let r = client
            .admin_at(e)?
            .state_hash(client.request(pb::StateHashRequest {
                index,
                wait_ms: 10_000,
            }))
            .await
            .map_err(status)?
            .into_inner();
        out.push(r.hash);
    }
    Ok(out)
}
