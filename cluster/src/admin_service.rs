//! The `Admin` service: status, membership, leadership, snapshots, compaction, backups and
//! state hashes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qastore_proto::v1 as pb;
use qastore_proto::v1::admin_server::Admin;
use qastore_raft::write_stages;
use qastore_raft::{NodeStatus, PeerNode, Role};
use tonic::{Request, Response, Status};

use crate::access::{self, Caller};
use crate::deadline::call_timeout;
use crate::error::ApiError;
use crate::membership::Membership;
use crate::node::Node;

/// The `Admin` service of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Arc<Node>,
}

impl AdminService {
    /// The service of `node`.
    pub fn new(node: Arc<Node>) -> Self {
        AdminService { node }
    }
}

/// This node's storage figures.
pub fn storage_stats(node: &Node) -> pb::StorageStats {
    let w = node.raft.wal_stats();
    let mut out = pb::StorageStats {
        wal_bytes: w.bytes,
        wal_entries: w.entries,
        wal_fsyncs: w.segment_syncs,
        wal_segments: w.segments,
        disk_used_bytes: node.quota.used_bytes(),
        disk_quota_bytes: node.quota.quota_bytes(),
        disk_alarm: node.quota.alarm(),
        ..Default::default()
    };
    if let Ok(engine) = node.raft.engine() {
        let e = engine.stats();
        out.applied_index = e.applied_index;
        out.flushed_index = e.flushed_index;
        out.memtable_bytes = e.memtable_bytes + e.immutable_bytes;
        out.immutable_memtables = e.immutable_memtables as u64;
        out.flushes = e.flushes;
        out.compactions = e.compactions;
        out.pending_compaction_bytes = e.pending_compaction_bytes;
        out.write_amplification = e.write_amplification;
        out.write_slowdowns = e.slowdowns;
        out.write_stops = e.stops;
        out.levels = e
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| pb::LevelStats {
                level: i as u32,
                files: l.files as u64,
                bytes: l.bytes,
                score: l.score,
            })
            .collect();
    }
    out
}

fn role_to_pb(r: Role) -> pb::Role {
    match r {
        Role::Leader => pb::Role::Leader,
        Role::Follower => pb::Role::Follower,
        Role::Candidate => pb::Role::Candidate,
        Role::Learner => pb::Role::Learner,
        Role::Shutdown => pb::Role::Shutdown,
    }
}

/// This node's status as the API shows it.
pub fn node_status(node: &Node) -> pb::NodeStatus {
    let s = node.raft.status();
    let me = node.raft.peer_node();
    let removed = matches!(node.membership(), Membership::Removed(_));
    let role = if removed {
        pb::Role::Removed
    } else {
        role_to_pb(s.role)
    };
    pb::NodeStatus {
        node_id: s.node_id,
        raft_addr: me.raft_addr,
        api_addr: me.api_addr,
        role: role as i32,
        term: s.term,
        // A removed node follows no leader, whatever its log last said.
        leader_id: s.leader.filter(|_| !removed),
        last_log_index: s.last_log_index,
        committed_index: s.committed,
        applied_index: s.applied,
        snapshot_index: s.snapshot,
        purged_index: s.purged,
        apply_lag: s
            .last_log_index
            .unwrap_or(0)
            .saturating_sub(s.applied.unwrap_or(0)),
        staleness_ms: node.raft.staleness().map(|d| d.as_millis() as u64),
        storage: Some(storage_stats(node)),
        cluster_id: node.config.cluster_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        drill_max_unavailable_ms: node.config.drill_max_unavailable_ms,
        cannot_apply: node
            .raft
            .state_machine()
            .damage_reason()
            .unwrap_or_default(),
        insecure: !node.config.tls_on(),
        cert_not_after_ns: node.raft.config().tls.as_ref().map_or(0, |t| {
            (t.credentials()
                .certificate()
                .not_after
                .unix_timestamp_nanos()) as i64
        }),
    }
}

fn members_of(s: &NodeStatus) -> pb::MembersResponse {
    pb::MembersResponse {
        members: s
            .nodes
            .iter()
            .map(|(id, n)| pb::Member {
                node_id: *id,
                raft_addr: n.raft_addr.clone(),
                api_addr: n.api_addr.clone(),
                voter: s.voters.contains(id),
            })
            .collect(),
        leader_id: s.leader,
    }
}

/// The cluster's status as this node can gather it: its own, and each other member's over
/// the member's API.
pub async fn cluster_status(node: &Node) -> pb::ClusterStatusResponse {
    let s = node.raft.status();
    let me = node.raft.id();
    let is_leader = s.leader == Some(me);
    let last = s.last_log_index.unwrap_or(0);
    let removed = match node.membership() {
        Membership::Removed(why) => Some(format!("removed from the cluster: {why}")),
        Membership::Member | Membership::NotAdded => None,
    };
    // A removed node lists itself too, even when the membership it holds does not.
    let mut nodes = s.nodes.clone();
    if removed.is_some() {
        nodes.entry(me).or_insert_with(|| node.raft.peer_node());
    }
    let s = &s;
    let removed = &removed;
    let calls = nodes.into_iter().map(|(id, n)| async move {
        let (status, error) = if id == me {
            (Some(node_status(node)), removed.clone().unwrap_or_default())
        } else {
            match remote_status(node, &n).await {
                Ok(st) => (Some(st), String::new()),
                Err(e) => (None, e),
            }
        };
        let replication_lag = if is_leader {
            s.replication
                .get(&id)
                .map(|m| last.saturating_sub(m.unwrap_or(0)))
        } else {
            None
        };
        pb::MemberStatus {
            node_id: id,
            voter: s.voters.contains(&id),
            raft_addr: n.raft_addr,
            api_addr: n.api_addr,
            status,
            error,
            replication_lag,
        }
    });
    pb::ClusterStatusResponse {
        answered_by: me,
        leader_id: s.leader.filter(|_| removed.is_none()),
        members: futures::future::join_all(calls).await,
    }
}

async fn remote_status(node: &Node, n: &PeerNode) -> Result<pb::NodeStatus, String> {
    let mut client = node.peers.admin(&n.api_addr).map_err(|e| e.to_string())?;
    let mut req = Request::new(pb::NodeStatusRequest {});
    req.set_timeout(Duration::from_secs(1));
    match tokio::time::timeout(Duration::from_secs(1), client.get_node_status(req)).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
        Err(_) => Err("no answer within 1 s".into()),
    }
}

/// Checks a backup name: a plain directory name.
fn backup_name(name: &str) -> Result<&str, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(ApiError::InvalidArgument(format!(
            "field name: {name:?} is not a plain name inside the backup directory \
             (letters, digits, '-', '_', '.'; no path separators)"
        )))
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn get_node_status(&self, _: Request<pb::NodeStatusRequest>) -> Answer<pb::NodeStatus> {
        Ok(Response::new(node_status(&self.node)))
    }

    async fn cluster_status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Answer<pb::ClusterStatusResponse> {
        Ok(Response::new(cluster_status(&self.node).await))
    }

    async fn members(&self, _: Request<pb::MembersRequest>) -> Answer<pb::MembersResponse> {
        Ok(Response::new(members_of(&self.node.raft.status())))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Answer<pb::MembersResponse> {
        let audit = self.audit_begin("Admin/AddLearner", &request);
        let result = self.serve_add_learner(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn promote(&self, request: Request<pb::PromoteRequest>) -> Answer<pb::MembersResponse> {
        let audit = self.audit_begin("Admin/Promote", &request);
        let result = self.serve_promote(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Answer<pb::MembersResponse> {
        let audit = self.audit_begin("Admin/RemoveNode", &request);
        let result = self.serve_remove_node(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Answer<pb::TransferLeadershipResponse> {
        let audit = self.audit_begin("Admin/TransferLeadership", &request);
        let result = self.serve_transfer_leadership(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn trigger_snapshot(
        &self,
        request: Request<pb::TriggerSnapshotRequest>,
    ) -> Answer<pb::TriggerSnapshotResponse> {
        let audit = self.audit_begin("Admin/TriggerSnapshot", &request);
        let result = self.serve_trigger_snapshot(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn trigger_compaction(
        &self,
        request: Request<pb::TriggerCompactionRequest>,
    ) -> Answer<pb::TriggerCompactionResponse> {
        let audit = self.audit_begin("Admin/TriggerCompaction", &request);
        let result = self.serve_trigger_compaction(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn backup(&self, request: Request<pb::BackupRequest>) -> Answer<pb::BackupResponse> {
        let audit = self.audit_begin("Admin/Backup", &request);
        let result = self.serve_backup(request).await;
        self.audit_end(audit, &result).await;
        result
    }

    async fn state_hash(
        &self,
        request: Request<pb::StateHashRequest>,
    ) -> Answer<pb::StateHashResponse> {
        let req = request.into_inner();
        let wait = Duration::from_millis(if req.wait_ms == 0 {
            10_000
        } else {
            req.wait_ms
        });
        let raft = &self.node.raft;
        let (index, hash) = if req.index == 0 {
            let index = raft.applied_index();
            (index, raft.state_hash_at(index, wait).await)
        } else {
            (req.index, raft.state_hash_at(req.index, wait).await)
        };
        let hash = hash.map_err(ApiError::from)?;
        Ok(Response::new(pb::StateHashResponse {
            node_id: raft.id(),
            index,
            hash,
        }))
    }

    async fn hash_mark(
        &self,
        request: Request<pb::HashMarkRequest>,
    ) -> Answer<pb::HashMarkResponse> {
        // Not audited: a hash mark compares replicas and changes nothing, and an audit entry
        // right after it would make the state hashed at the mark differ from the state a
        // moment later.
        self.serve_hash_mark(request).await
    }

    async fn get_storage_stats(
        &self,
        _: Request<pb::StorageStatsRequest>,
    ) -> Answer<pb::StorageStats> {
        Ok(Response::new(storage_stats(&self.node)))
    }

    async fn get_write_stages(
        &self,
        _: Request<pb::WriteStagesRequest>,
    ) -> Answer<pb::WriteStagesResponse> {
        Ok(Response::new(pb::WriteStagesResponse {
            node_id: self.node.raft.id(),
            stages: write_stages::snapshot()
                .into_iter()
                .map(|(stage, h)| pb::StageHistogram {
                    stage: stage.name().to_string(),
                    upper_bounds_us: write_stages::UPPER_BOUNDS_US.to_vec(),
                    counts: h.counts,
                    sum_ns: h.sum_ns,
                })
                .collect(),
        }))
    }

    async fn halt(&self, request: Request<pb::HaltRequest>) -> Answer<pb::HaltResponse> {
        let audit = self.audit_begin("Admin/Halt", &request);
        let id = request.into_inner().node_id;
        if id != self.node.raft.id() {
            let refused = Err(ApiError::InvalidArgument(format!(
                "field node_id: this is node {}, not node {id}",
                self.node.raft.id()
            ))
            .into());
            self.audit_end(audit, &refused).await;
            return refused;
        }
        // The trail has it before the process ends.
        let answer = Ok(Response::new(pb::HaltResponse {}));
        self.audit_end(audit, &answer).await;
        tracing::warn!(
            node = id,
            "halting at an operator's request (failover drill)"
        );
        // Answer first, then die: the caller learns the request arrived.
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::process::exit(137);
        });
        answer
    }

    async fn set_access(&self, request: Request<pb::SetAccessRequest>) -> Answer<pb::AccessEntry> {
        let audit = self.audit_begin("Admin/SetAccess", &request);
        let caller = request.extensions().get::<Caller>().cloned();
        let result = access::table::set(&self.node, caller.as_ref(), request.into_inner())
            .await
            .map(Response::new);
        self.audit_end(audit, &result).await;
        result
    }

    async fn remove_access(
        &self,
        request: Request<pb::RemoveAccessRequest>,
    ) -> Answer<pb::RemoveAccessResponse> {
        let audit = self.audit_begin("Admin/RemoveAccess", &request);
        let result = access::table::remove(&self.node, request.into_inner())
            .await
            .map(Response::new);
        self.audit_end(audit, &result).await;
        result
    }

    async fn list_access(
        &self,
        _: Request<pb::ListAccessRequest>,
    ) -> Answer<pb::ListAccessResponse> {
        Ok(Response::new(access::table::list(&self.node)))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Answer<pb::ListAuditResponse> {
        Ok(Response::new(
            access::audit::list(&self.node, request.into_inner()).await?,
        ))
    }

    async fn get_cluster_settings(
        &self,
        _: Request<pb::GetClusterSettingsRequest>,
    ) -> Answer<pb::ClusterSettings> {
        Ok(Response::new(crate::settings::get(&self.node)))
    }

    async fn set_cluster_settings(
        &self,
        request: Request<pb::SetClusterSettingsRequest>,
    ) -> Answer<pb::ClusterSettings> {
        let audit = self.audit_begin("Admin/SetClusterSettings", &request);
        let result = crate::settings::set(&self.node, request.into_inner())
            .await
            .map(Response::new);
        self.audit_end(audit, &result).await;
        result
    }

    async fn record_audit(
        &self,
        request: Request<pb::AuditEntry>,
    ) -> Answer<pb::RecordAuditResponse> {
        let index = access::audit::propose(&self.node, request.into_inner()).await?;
        Ok(Response::new(pb::RecordAuditResponse { index }))
    }
}

/// An action under way, to be put into the audit trail once it ends.
struct PendingAudit {
    caller: Option<Caller>,
    action: &'static str,
    detail: String,
}

/// The audited actions, as served.
impl AdminService {
    /// Notes who asked for `action` and with what.
    fn audit_begin<T: std::fmt::Debug>(
        &self,
        action: &'static str,
        request: &Request<T>,
    ) -> PendingAudit {
        PendingAudit {
            caller: request.extensions().get::<Caller>().cloned(),
            action,
            detail: format!("{:?}", request.get_ref()),
        }
    }

    /// Puts the action and how it ended into the audit trail.
    async fn audit_end<T>(&self, pending: PendingAudit, result: &Result<T, Status>) {
        let entry = access::audit::entry(
            &self.node,
            pending.caller.as_ref(),
            pending.action,
            pending.detail,
            access::audit::outcome(result),
        );
        access::audit::record(&self.node, entry).await;
    }

    async fn serve_add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Answer<pb::MembersResponse> {
        let req = request.into_inner();
        if req.node_id == 0 {
            return Err(ApiError::InvalidArgument("field node_id: must not be 0".into()).into());
        }
        for (field, addr) in [("raft_addr", &req.raft_addr), ("api_addr", &req.api_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err()
                && !addr
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                return Err(ApiError::InvalidArgument(format!(
                    "field {field}: {addr:?} is not host:port"
                ))
                .into());
            }
        }
        let s = self.node.raft.status();
        if s.nodes.contains_key(&req.node_id) {
            return Err(ApiError::InvalidArgument(format!(
                "field node_id: node {} is already a member",
                req.node_id
            ))
            .into());
        }
        let started = Instant::now();
        let wait =
            (req.wait_caught_up_ms > 0).then(|| Duration::from_millis(req.wait_caught_up_ms));
        // The learner has caught up once it applied the entry that added it, which comes
        // after everything the leader had committed when the call was made.
        let added_at = self
            .node
            .raft
            .add_learner(
                req.node_id,
                PeerNode::new(req.raft_addr, req.api_addr.clone()),
                wait,
            )
            .await
            .map_err(ApiError::from)?;
        if let Some(wait) = wait {
            let deadline = started + wait;
            crate::catch_up::wait_applied(
                &self.node,
                req.node_id,
                &req.api_addr,
                added_at,
                started,
                deadline,
            )
            .await?;
        }
        Ok(Response::new(members_of(&self.node.raft.status())))
    }

    async fn serve_promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Answer<pb::MembersResponse> {
        let id = request.into_inner().node_id;
        let s = self.node.raft.status();
        if !s.learners.contains(&id) {
            return Err(ApiError::InvalidArgument(format!(
                "field node_id: node {id} is not a learner{}",
                if s.voters.contains(&id) {
                    " (it already votes)"
                } else {
                    ""
                }
            ))
            .into());
        }
        let voters: BTreeSet<u64> = s.voters.iter().copied().chain([id]).collect();
        self.node
            .raft
            .change_voters(voters)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(members_of(&self.node.raft.status())))
    }

    async fn serve_remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Answer<pb::MembersResponse> {
        let id = request.into_inner().node_id;
        let s = self.node.raft.status();
        if !s.nodes.contains_key(&id) {
            return Err(ApiError::InvalidArgument(format!(
                "field node_id: node {id} is not a member"
            ))
            .into());
        }
        self.node
            .raft
            .remove_node(id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(members_of(&self.node.raft.status())))
    }

    async fn serve_transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Answer<pb::TransferLeadershipResponse> {
        let req = request.into_inner();
        let to = req.to_node_id;
        let s = self.node.raft.status();
        if !s.voters.contains(&to) {
            return Err(ApiError::InvalidArgument(format!(
                "field to_node_id: node {to} is not a voter"
            ))
            .into());
        }
        if to == self.node.raft.id() {
            // Asking the leader to hand over to itself has nothing to do: say who leads.
            return Ok(Response::new(pb::TransferLeadershipResponse {
                leader_id: to,
                elapsed_ms: 0,
            }));
        }
        let started = Instant::now();
        self.node
            .raft
            .transfer_leader(to)
            .await
            .map_err(ApiError::from)?;
        let wait = Duration::from_millis(if req.wait_ms == 0 {
            10_000
        } else {
            req.wait_ms
        });
        let deadline = started + wait;
        loop {
            let leader = self.node.raft.status().leader;
            if leader == Some(to) {
                return Ok(Response::new(pb::TransferLeadershipResponse {
                    leader_id: to,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                }));
            }
            if Instant::now() >= deadline {
                return Err(ApiError::DeadlineExceeded(format!(
                    "node {to} did not take over within {} ms (the leader is {leader:?})",
                    wait.as_millis()
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn serve_trigger_snapshot(
        &self,
        _: Request<pb::TriggerSnapshotRequest>,
    ) -> Answer<pb::TriggerSnapshotResponse> {
        let before = self.node.raft.status().snapshot;
        self.node
            .raft
            .trigger_snapshot()
            .await
            .map_err(ApiError::from)?;
        // The trigger only asks; wait a little for the snapshot to appear.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.node.raft.status().snapshot;
            if now != before && now.is_some() || Instant::now() >= deadline {
                return Ok(Response::new(pb::TriggerSnapshotResponse {
                    snapshot_index: now,
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn serve_trigger_compaction(
        &self,
        _: Request<pb::TriggerCompactionRequest>,
    ) -> Answer<pb::TriggerCompactionResponse> {
        self.node.raft.compact().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::TriggerCompactionResponse {
            storage: Some(storage_stats(&self.node)),
        }))
    }

    async fn serve_backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Answer<pb::BackupResponse> {
        let req = request.into_inner();
        let name = backup_name(&req.name)?;
        let root = self.node.config.backup_dir();
        let dir = root.join(name);
        if dir.exists() {
            return Err(ApiError::InvalidArgument(format!(
                "field name: backup {name:?} already exists in {}",
                root.display()
            ))
            .into());
        }
        tokio::fs::create_dir_all(&root).await.map_err(|e| {
            ApiError::Internal(format!(
                "creating the backup directory {}: {e}",
                root.display()
            ))
        })?;
        let info = self.node.raft.backup(dir).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::BackupResponse {
            path: info.dir.display().to_string(),
            log_index: info.meta.log_index,
            bytes: info.total_bytes(),
            files: info.meta.files.len() as u32,
        }))
    }

    async fn serve_hash_mark(
        &self,
        request: Request<pb::HashMarkRequest>,
    ) -> Answer<pb::HashMarkResponse> {
        let timeout = call_timeout(request.metadata(), self.node.write_timeout());
        let index = self
            .node
            .raft
            .hash_mark(timeout)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::HashMarkResponse { index }))
    }
}

#[cfg(test)]
mod tests {
    use super::backup_name;

    #[test]
    fn backup_names_stay_inside_the_backup_directory() {
        assert!(backup_name("nightly-2024.12.06").is_ok());
        for bad in ["", ".", "..", "../etc", "/tmp/x", "a/b", "a\\b", "x y"] {
            let e = backup_name(bad).unwrap_err().to_string();
            assert!(e.contains("field name"), "{bad}: {e}");
        }
    }
}
