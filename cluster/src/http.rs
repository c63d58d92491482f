//! The node's HTTP port: Prometheus `/metrics`, `/livez` (the process answers; never depends
//! on a quorum), `/readyz` (has a leader and is caught up), and curl-friendly JSON admin
//! routes: `GET /admin/status`, `GET /admin/storage`, `POST /admin/compaction`,
//! `POST /admin/snapshot`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use qastore_proto::v1 as pb;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin_service::{cluster_status, node_status, storage_stats};
use crate::node::Node;

/// What `/readyz` says of a node running without TLS.
const INSECURE_WARNING: &str =
    "insecure: TLS is off, so the node's ports take calls from anyone who reaches them";

#[derive(Clone)]
struct AppState {
    node: Arc<Node>,
    prometheus: Option<PrometheusHandle>,
}

/// Serves the HTTP routes on `listener` until `stop`.
pub(crate) fn spawn(
    node: Arc<Node>,
    listener: TcpListener,
    prometheus: Option<PrometheusHandle>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/admin/status", get(status))
        .route("/admin/storage", get(storage))
        .route("/admin/compaction", post(compaction))
        .route("/admin/snapshot", post(snapshot))
        .with_state(AppState { node, prometheus });
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    })
}

async fn metrics(State(s): State<AppState>) -> Response {
    match &s.prometheus {
        Some(h) => {
            // The leader and membership gauges as of this scrape, as `/readyz` would answer.
            crate::metrics::refresh_health(&s.node);
            let page = crate::metrics::render(h);
            ([("content-type", "text/plain; version=0.0.4")], page).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are recorded by another recorder in this process\n",
        )
            .into_response(),
    }
}

async fn livez(State(s): State<AppState>) -> Json<Value> {
    Json(
        json!({ "live": true, "node_id": s.node.raft.id(), "uptime_s": s.node.uptime().as_secs() }),
    )
}

async fn readyz(State(s): State<AppState>) -> Response {
    let tls = s.node.config.tls_on();
    let warning = (!tls).then_some(INSECURE_WARNING);
    let damaged = s.node.raft.state_machine().damage_reason().map(|reason| {
        format!("this node cannot apply: its engine is damaged and is being replaced from a peer ({reason})")
    });
    match damaged.map_or_else(|| s.node.ready(), Err) {
        Ok(()) => Json(json!({ "ready": true, "tls": tls, "warning": warning })).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": why, "tls": tls, "warning": warning })),
        )
            .into_response(),
    }
}

/// A role's name as status reports show it (`leader`, `follower`, ...).
pub fn role_name(code: i32) -> &'static str {
    pb::Role::try_from(code).map_or("UNKNOWN", |r| match r {
        pb::Role::Leader => "leader",
        pb::Role::Follower => "follower",
        pb::Role::Candidate => "candidate",
        pb::Role::Learner => "learner",
        pb::Role::Shutdown => "shutdown",
        pb::Role::Removed => "removed",
        pb::Role::Unspecified => "unspecified",
    })
}

/// A storage report as JSON.
pub fn storage_json(s: &pb::StorageStats) -> Value {
    json!({
        "applied_index": s.applied_index,
        "flushed_index": s.flushed_index,
        "memtable_bytes": s.memtable_bytes,
        "immutable_memtables": s.immutable_memtables,
        "flushes": s.flushes,
        "compactions": s.compactions,
        "pending_compaction_bytes": s.pending_compaction_bytes,
        "write_amplification": s.write_amplification,
        "write_slowdowns": s.write_slowdowns,
        "write_stops": s.write_stops,
        "levels": s.levels.iter().map(|l| json!({
            "level": l.level, "files": l.files, "bytes": l.bytes, "score": l.score
        })).collect::<Vec<_>>(),
        "wal_bytes": s.wal_bytes,
        "wal_entries": s.wal_entries,
        "wal_fsyncs": s.wal_fsyncs,
        "wal_segments": s.wal_segments,
        "disk_used_bytes": s.disk_used_bytes,
        "disk_quota_bytes": s.disk_quota_bytes,
        "disk_alarm": s.disk_alarm,
    })
}

/// A node's status as JSON.
pub(crate) fn node_json(s: &pb::NodeStatus) -> Value {
    json!({
        "node_id": s.node_id,
        "cluster_id": s.cluster_id,
        "raft_addr": s.raft_addr,
        "api_addr": s.api_addr,
        "role": role_name(s.role),
        "term": s.term,
        "leader_id": s.leader_id,
        "last_log_index": s.last_log_index,
        "committed_index": s.committed_index,
        "applied_index": s.applied_index,
        "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index,
        "apply_lag": s.apply_lag,
        "staleness_ms": s.staleness_ms,
        "cannot_apply": (!s.cannot_apply.is_empty()).then_some(&s.cannot_apply),
        "version": s.version,
        "insecure": s.insecure,
        "cert_not_after_ns": (s.cert_not_after_ns != 0).then_some(s.cert_not_after_ns),
        "storage": s.storage.as_ref().map(storage_json),
    })
}

/// A cluster status as JSON.
pub fn cluster_json(c: &pb::ClusterStatusResponse) -> Value {
    json!({
        "answered_by": c.answered_by,
        "leader_id": c.leader_id,
        "members": c.members.iter().map(|m| json!({
            "node_id": m.node_id,
            "voter": m.voter,
            "raft_addr": m.raft_addr,
            "api_addr": m.api_addr,
            "replication_lag": m.replication_lag,
            "status": m.status.as_ref().map(node_json),
            "error": (!m.error.is_empty()).then_some(&m.error),
        })).collect::<Vec<_>>(),
    })
}

async fn status(State(s): State<AppState>) -> Json<Value> {
    let cluster = cluster_status(&s.node).await;
    Json(json!({
        "node": node_json(&node_status(&s.node)),
        "cluster": cluster_json(&cluster),
    }))
}

async fn storage(State(s): State<AppState>) -> Json<Value> {
    Json(storage_json(&storage_stats(&s.node)))
}

fn failure(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

/// With TLS on, operator actions need an admin's certificate, which this plain HTTP port
/// cannot check: they are refused here and taken through `qastore ctl` instead.
fn refuse_under_tls(node: &Node, action: &str) -> Option<Response> {
    node.config.tls_on().then(|| {
        (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": format!(
                    "this node runs mutual TLS: {action} needs an admin's certificate; use \
                     `qastore ctl {action}` with one"
                )
            })),
        )
            .into_response()
    })
}

async fn compaction(State(s): State<AppState>) -> Response {
    if let Some(refused) = refuse_under_tls(&s.node, "compact") {
        return refused;
    }
    match s.node.raft.compact().await {
        Ok(()) => {
            Json(json!({ "compacted": true, "storage": storage_json(&storage_stats(&s.node)) }))
                .into_response()
        }
        Err(e) => failure(e),
    }
}

async fn snapshot(State(s): State<AppState>) -> Response {
    if let Some(refused) = refuse_under_tls(&s.node, "snapshot") {
        return refused;
    }
    match s.node.raft.trigger_snapshot().await {
        Ok(()) => {
            Json(json!({ "requested": true, "snapshot_index": s.node.raft.status().snapshot }))
                .into_response()
        }
        Err(e) => failure(e),
    }
}
