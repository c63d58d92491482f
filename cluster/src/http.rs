//! The node's HTTP port: Prometheus `/metrics`, `/livez` (the process answers; never depends
//! on a quorum), `/readyz` (has a leader and is caught up), and curl-friendly JSON admin
//! routes: `GET /admin/status`, `GET /admin/storage`, `POST /admin/compaction`,
//! `POST /admin/snapshot`. With TLS the port speaks HTTPS (a client certificate optional), and
//! the two POST routes need an admin's certificate, as `Admin.TriggerCompaction` and
//! `Admin.TriggerSnapshot` do.

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

use crate::access::{audit, Caller, Gate};
use crate::admin_service::{cluster_status, node_status, storage_stats};
use crate::http_tls::{HttpCaller, TlsListener};
use crate::node::Node;

/// What `/readyz` says of a node running without TLS.
const INSECURE_WARNING: &str =
    "insecure: TLS is off, so the node's ports take calls from anyone who reaches them";

#[derive(Clone)]
struct AppState {
    node: Arc<Node>,
    prometheus: Option<PrometheusHandle>,
    gate: Arc<Gate>,
}

/// Serves the HTTP routes on `listener` (over `tls`, if given) until `stop`.
pub(crate) fn spawn(
    node: Arc<Node>,
    listener: TcpListener,
    prometheus: Option<PrometheusHandle>,
    tls: Option<Arc<qastore_security::tls::ReloadingTls>>,
    gate: Arc<Gate>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let handshake_timeout = node.config.tls.handshake_timeout();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/admin/status", get(status))
        .route("/admin/storage", get(storage))
        .route("/admin/compaction", post(compaction))
        .route("/admin/snapshot", post(snapshot))
        .with_state(AppState {
            node,
            prometheus,
            gate,
        });
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let result = match tls {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Some(tls) => match TlsListener::new(listener, tls, handshake_timeout) {
                Ok(listener) => {
                    let app = app.into_make_service_with_connect_info::<HttpCaller>();
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                }
                Err(e) => Err(e),
            },
        };
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

/// With TLS on, an action on the node needs what the same gRPC call needs (`method`): the
/// caller's certificate checked by the gate, or a token. Without TLS every caller may act.
fn allowed(
    s: &AppState,
    method: &str,
    request: &axum::extract::Request,
) -> Result<Option<Caller>, Box<Response>> {
    if !s.node.config.tls_on() {
        return Ok(None);
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<HttpCaller>>()
        .map(|c| &c.0 .0);
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    match s.gate.admit(method, peer, authorization) {
        Ok(caller) => Ok(Some(caller)),
        Err(status) => {
            s.gate.note_refused(method, peer, &status);
            let code = match status.code() {
                tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            Err(Box::new(
                (code, Json(json!({ "error": status.message() }))).into_response(),
            ))
        }
    }
}

/// Puts an action taken over HTTP into the audit trail, as the gRPC call's would be.
async fn audited(s: &AppState, caller: Option<&Caller>, action: &str, ok: Result<(), String>) {
    let result = match ok {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("INTERNAL: {e}"),
    };
    let entry = audit::entry(&s.node, caller, action, "over HTTP".into(), result);
    audit::record(&s.node, entry).await;
}

async fn compaction(State(s): State<AppState>, request: axum::extract::Request) -> Response {
    let caller = match allowed(&s, "/qastore.v1.Admin/TriggerCompaction", &request) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let done = s.node.raft.compact().await;
    audited(
        &s,
        caller.as_ref(),
        "Admin/TriggerCompaction",
        done.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    )
    .await;
    match done {
        Ok(()) => {
            Json(json!({ "compacted": true, "storage": storage_json(&storage_stats(&s.node)) }))
                .into_response()
        }
        Err(e) => failure(e),
    }
}

async fn snapshot(State(s): State<AppState>, request: axum::extract::Request) -> Response {
    let caller = match allowed(&s, "/qastore.v1.Admin/TriggerSnapshot", &request) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let done = s.node.raft.trigger_snapshot().await;
    audited(
        &s,
        caller.as_ref(),
        "Admin/TriggerSnapshot",
        done.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    )
    .await;
    match done {
        Ok(()) => {
            Json(json!({ "requested": true, "snapshot_index": s.node.raft.status().snapshot }))
                .into_response()
        }
        Err(e) => failure(e),
    }
}
