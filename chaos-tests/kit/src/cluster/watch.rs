//! Watching a [`ProcCluster`] come up: a leader named, a node answering, every node healthy.

use std::time::{Duration, Instant};

use qastore_client::Client;
use qastore_proto::v1 as pb;

use super::ProcCluster;
use crate::KitError;

impl ProcCluster {
    /// Waits up to `within` until some node names a leader; returns it and its client
    /// address.
    pub async fn wait_leader(&self, within: Duration) -> Result<(u64, String), KitError> {
        let client = self.client()?;
        let started = Instant::now();
        loop {
            if let Ok(l) = client.find_leader().await {
                return Ok(l);
            }
            if started.elapsed() >= within {
                return Err(KitError::Cluster(format!(
                    "no leader within {within:?}; logs in {}",
                    self.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `within` until every node follows the same leader and has applied the
    /// entry that made it a member (so that none still answers "not a member yet").
    pub async fn wait_formed(&self, within: Duration) -> Result<(), KitError> {
        let client = self.client()?;
        let started = Instant::now();
        loop {
            let mut formed = true;
            for id in self.ids() {
                let member = self.status(id, &client).await.is_some_and(|s| {
                    let role_ok =
                        s.role == pb::Role::Leader as i32 || s.role == pb::Role::Follower as i32;
                    role_ok && s.leader_id.is_some() && s.applied_index.unwrap_or(0) >= 1
                });
                formed &= member;
            }
            if formed {
                return Ok(());
            }
            if started.elapsed() >= within {
                return Err(KitError::Cluster(format!(
                    "the cluster did not form within {within:?}; logs in {}",
                    self.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to 30 seconds until node `id` answers on its client API.
    pub async fn wait_up(&self, id: u64) -> Result<(), KitError> {
        let client = self.client()?;
        let addr = self.api(id);
        let started = Instant::now();
        loop {
            let mut admin = client.admin_at(&addr)?;
            let asked = admin
                .get_node_status(client.request(pb::NodeStatusRequest {}))
                .await;
            if asked.is_ok() {
                return Ok(());
            }
            if started.elapsed() >= Duration::from_secs(30) {
                return Err(KitError::Cluster(format!("node {id} never came up")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Node `id`'s own status, if it answers within 500 ms.
    pub async fn status(&self, id: u64, client: &Client) -> Option<pb::NodeStatus> {
        let addr = self.node(id)?.api.to_string();
        let mut admin = client.admin_at(&addr).ok()?;
        let mut req = tonic::Request::new(pb::NodeStatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        tokio::time::timeout(Duration::from_millis(700), admin.get_node_status(req))
            .await
            .ok()?
            .ok()
            .map(|r| r.into_inner())
    }

    /// The leader as the running nodes see it: a node reporting itself leader in the highest
    /// term, confirmed by at least one other node naming it.
    pub async fn confirmed_leader(&self, client: &Client) -> Option<u64> {
        let mut statuses = Vec::new();
        for id in self.up() {
            if let Some(s) = self.status(id, client).await {
                statuses.push(s);
            }
        }
        let top = statuses
            .iter()
            .filter(|s| s.role == pb::Role::Leader as i32)
            .max_by_key(|s| s.term)?;
        let named = statuses
            .iter()
            .filter(|s| {
                s.node_id != top.node_id && s.leader_id == Some(top.node_id) && s.term == top.term
            })
            .count();
        (named > 0 || self.nodes.len() == 1).then_some(top.node_id)
    }

    /// Waits up to `within` until every node answers, a leader is confirmed, and every node
    /// has applied what it knows is committed (within 1,000 entries); returns the leader.
    pub async fn healthy(&self, within: Duration) -> Result<u64, KitError> {
        let client = self.client_with("health", Duration::from_millis(500), Duration::ZERO)?;
        let started = Instant::now();
        let mut why = String::new();
        while started.elapsed() < within {
            let mut ok = true;
            for id in self.ids() {
                match self.status(id, &client).await {
                    Some(s)
                        if s.committed_index
                            .unwrap_or(0)
                            .saturating_sub(s.applied_index.unwrap_or(0))
                            <= 1000 => {}
                    Some(s) => {
                        ok = false;
                        why = format!("node {id} lags: {s:?}");
                    }
                    None => {
                        ok = false;
                        why = format!("node {id} does not answer");
                    }
                }
            }
            if ok {
                if let Some(l) = self.confirmed_leader(&client).await {
                    return Ok(l);
                }
                why = "no confirmed leader".into();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(KitError::Cluster(format!(
            "unhealthy after {within:?}: {why}"
        )))
    }
}
