//! `ctl` commands about the cluster itself: status, membership, leadership, snapshots,
//! compaction, backups, hashes and drills.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use qastore_client::{Client, ClientConfig};
use qastore_cluster::http::{cluster_json, role_name, storage_json};
use qastore_cluster::NodeConfig;
use qastore_proto::v1 as pb;
use serde_json::json;

use super::{cluster_error, failed_at, status_text, CtlResult};
use crate::output::{bytes, opt, print, Format, Table};
use qastore_client::drill;

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The cluster's status from the first endpoint that answers. Only the leader tracks how far
/// behind each member is: when another node answered, the lag figures come from the leader.
async fn cluster_status(client: &Client) -> Result<pb::ClusterStatusResponse, String> {
    let mut c = first_answer(client).await?;
    if c.leader_id.is_some() && c.leader_id != Some(c.answered_by) {
        let leader = c
            .members
            .iter()
            .find(|m| Some(m.node_id) == c.leader_id)
            .map(|m| m.api_addr.clone());
        if let Some(addr) = leader {
            let mut admin = client.admin_at(&addr).map_err(text)?;
            if let Ok(l) = admin
                .cluster_status(client.request(pb::ClusterStatusRequest {}))
                .await
            {
                let l = l.into_inner();
                for m in c.members.iter_mut().filter(|m| m.replication_lag.is_none()) {
                    m.replication_lag = l
                        .members
                        .iter()
                        .find(|x| x.node_id == m.node_id)
                        .and_then(|x| x.replication_lag);
                }
            }
        }
    }
    Ok(c)
}

async fn first_answer(client: &Client) -> Result<pb::ClusterStatusResponse, String> {
    let mut failures = Vec::new();
    for addr in client.endpoints() {
        let mut admin = client.admin_at(addr).map_err(text)?;
        match admin
            .cluster_status(client.request(pb::ClusterStatusRequest {}))
            .await
        {
            Ok(r) => return Ok(r.into_inner()),
            Err(e) => failures.push(failed_at(addr)(e)),
        }
    }
    Err(format!("no endpoint answered: {}", failures.join("; ")))
}

/// A certificate that expires within this many days is pointed out by `ctl status`.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// One line for each member whose certificate expires within [`EXPIRY_WARNING_DAYS`].
fn expiring(c: &pb::ClusterStatusResponse) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let day = 86_400 * 1_000_000_000i64;
    c.members
        .iter()
        .filter_map(|m| {
            let at = m.status.as_ref()?.cert_not_after_ns;
            let days = (at - now).div_euclid(day);
            (at != 0 && days < EXPIRY_WARNING_DAYS).then(|| {
                let when = super::time::format_time(at);
                if at <= now {
                    format!("CERTIFICATE: node {}'s expired at {when}: renew it now (`qastore certs node --replace`)", m.node_id)
                } else {
                    format!(
                        "CERTIFICATE: node {}'s expires in {days} days ({when}): renew it (`qastore certs node --replace`; no restart needed)",
                        m.node_id
                    )
                }
            })
        })
        .collect()
}

/// `ctl status`: fails (after printing the table) when a member cannot be reached.
pub async fn status(client: &Client, out: Format) -> CtlResult {
    let c = cluster_status(client).await?;
    print(out, &cluster_json(&c), || {
        let mut t = Table::new(&[
            "ID", "API", "ROLE", "VOTER", "TERM", "LEADER", "LAST", "COMMIT", "APPLIED", "SNAP",
            "LAG", "STALE", "DISK", "MEMTABLE", "ERROR",
        ]);
        for m in &c.members {
            let s = m.status.as_ref();
            t.row(vec![
                m.node_id.to_string(),
                m.api_addr.clone(),
                s.map_or("unreachable".into(), |s| role_name(s.role).to_string()),
                if m.voter { "yes" } else { "no" }.into(),
                s.map_or("-".into(), |s| s.term.to_string()),
                opt(s.and_then(|s| s.leader_id)),
                opt(s.and_then(|s| s.last_log_index)),
                opt(s.and_then(|s| s.committed_index)),
                opt(s.and_then(|s| s.applied_index)),
                opt(s.and_then(|s| s.snapshot_index)),
                opt(m.replication_lag),
                s.and_then(|s| s.staleness_ms)
                    .map_or("-".into(), |ms| format!("{ms} ms")),
                s.and_then(|s| s.storage.as_ref())
                    .map_or("-".into(), |st| bytes(st.disk_used_bytes)),
                s.and_then(|s| s.storage.as_ref())
                    .map_or("-".into(), |st| bytes(st.memtable_bytes)),
                match s.filter(|s| !s.cannot_apply.is_empty()) {
                    Some(s) => format!("cannot apply: {}", s.cannot_apply),
                    None => m.error.clone(),
                },
            ]);
        }
        let insecure: Vec<String> = c
            .members
            .iter()
            .filter(|m| m.status.as_ref().is_some_and(|s| s.insecure))
            .map(|m| m.node_id.to_string())
            .collect();
        let mut text = t.render();
        for line in expiring(&c) {
            text.push_str(&line);
            text.push('\n');
        }
        if !insecure.is_empty() {
            text.push_str(&format!(
                "INSECURE: node {} run(s) without TLS: anyone who reaches the ports can write, \
                 read and operate the cluster\n",
                insecure.join(", ")
            ));
        }
        text
    });
    let unreachable: Vec<String> = c
        .members
        .iter()
        .filter(|m| m.status.is_none())
        .map(|m| format!("node {} at {} ({})", m.node_id, m.api_addr, m.error))
        .collect();
    let cannot_apply: Vec<String> = c
        .members
        .iter()
        .filter_map(|m| m.status.as_ref().map(|s| (m, s)))
        .filter(|(_, s)| !s.cannot_apply.is_empty())
        .map(|(m, s)| format!("node {} at {} ({})", m.node_id, m.api_addr, s.cannot_apply))
        .collect();
    let mut problems = Vec::new();
    if !unreachable.is_empty() {
        problems.push(format!("unreachable: {}", unreachable.join("; ")));
    }
    if !cannot_apply.is_empty() {
        problems.push(format!("cannot apply: {}", cannot_apply.join("; ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn members_json(m: &pb::MembersResponse) -> serde_json::Value {
    json!({
        "leader_id": m.leader_id,
        "members": m.members.iter().map(|x| json!({
            "node_id": x.node_id, "raft_addr": x.raft_addr, "api_addr": x.api_addr, "voter": x.voter
        })).collect::<Vec<_>>(),
    })
}

fn print_members(m: &pb::MembersResponse, out: Format) {
    print(out, &members_json(m), || {
        let mut t = Table::new(&["ID", "RAFT", "API", "VOTER", "LEADER"]);
        for x in &m.members {
            t.row(vec![
                x.node_id.to_string(),
                x.raft_addr.clone(),
                x.api_addr.clone(),
                if x.voter { "yes" } else { "no" }.into(),
                if m.leader_id == Some(x.node_id) {
                    "*"
                } else {
                    ""
                }
                .into(),
            ]);
        }
        t.render()
    });
}

/// `ctl members`.
pub async fn members(client: &Client, out: Format) -> CtlResult {
    let (_, addr) = client
        .find_leader()
        .await
        .map_err(|e| cluster_error(client, e))?;
    let mut admin = client.admin_at(&addr).map_err(text)?;
    let m = admin
        .members(client.request(pb::MembersRequest {}))
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print_members(&m, out);
    Ok(())
}

/// Runs an admin call on the leader, following it if it moves.
pub(super) async fn on_leader<T, F, Fut>(client: &Client, call: F) -> Result<T, String>
where
    F: Fn(qastore_proto::v1::admin_client::AdminClient<qastore_client::Connection>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    client
        .leader_call(|addr| {
            let admin = client.admin_at(&addr);
            let call = &call;
            async move { Ok(call(admin?).await?.into_inner()) }
        })
        .await
        .map(|(v, _)| v)
        .map_err(|e| cluster_error(client, e))
}

/// `ctl transfer-leader`: a node that already leads is told so, and nothing is done.
pub async fn transfer(client: &Client, to: u64, out: Format) -> CtlResult {
    let (leader, _) = client
        .find_leader()
        .await
        .map_err(|e| cluster_error(client, e))?;
    if leader == to {
        print(
            out,
            &json!({"leader_id": to, "elapsed_ms": 0, "already_leader": true}),
            || format!("node {to} already leads: nothing to do\n"),
        );
        return Ok(());
    }
    let r = on_leader(client, |mut a| {
        let req = client.request(pb::TransferLeadershipRequest {
            to_node_id: to,
            wait_ms: 0,
        });
        async move { a.transfer_leadership(req).await }
    })
    .await?;
    print(
        out,
        &json!({"leader_id": r.leader_id, "elapsed_ms": r.elapsed_ms}),
        || format!("node {} leads ({} ms)\n", r.leader_id, r.elapsed_ms),
    );
    Ok(())
}

/// `ctl add-learner`.
pub async fn add_learner(
    client: &Client,
    id: u64,
    raft: String,
    api: String,
    wait_ms: u64,
    out: Format,
) -> CtlResult {
    let m = on_leader(client, |mut a| {
        let mut req = client.request(pb::AddLearnerRequest {
            node_id: id,
            raft_addr: raft.clone(),
            api_addr: api.clone(),
            wait_caught_up_ms: wait_ms,
        });
        req.set_timeout(client.options().call_timeout + Duration::from_millis(wait_ms));
        async move { a.add_learner(req).await }
    })
    .await?;
    print_members(&m, out);
    Ok(())
}

/// `ctl promote`.
pub async fn promote(client: &Client, id: u64, out: Format) -> CtlResult {
    let m = on_leader(client, |mut a| {
        let req = client.request(pb::PromoteRequest { node_id: id });
        async move { a.promote(req).await }
    })
    .await?;
    print_members(&m, out);
    Ok(())
}

/// `ctl remove`.
pub async fn remove(client: &Client, id: u64, out: Format) -> CtlResult {
    let m = on_leader(client, |mut a| {
        let req = client.request(pb::RemoveNodeRequest { node_id: id });
        async move { a.remove_node(req).await }
    })
    .await?;
    print_members(&m, out);
    Ok(())
}

pub(super) fn node_addr(client: &Client, node: Option<String>) -> String {
    node.unwrap_or_else(|| client.endpoints()[0].clone())
}

/// `ctl snapshot`.
pub async fn snapshot(client: &Client, node: Option<String>, out: Format) -> CtlResult {
    let addr = node_addr(client, node);
    let mut a = client.admin_at(&addr).map_err(text)?;
    let mut req = client.request(pb::TriggerSnapshotRequest {});
    req.set_timeout(Duration::from_secs(60));
    let r = a
        .trigger_snapshot(req)
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    print(
        out,
        &json!({"node": addr, "snapshot_index": r.snapshot_index}),
        || format!("{addr}: snapshot at index {}\n", opt(r.snapshot_index)),
    );
    Ok(())
}

/// `ctl compact`.
pub async fn compact(client: &Client, node: Option<String>, out: Format) -> CtlResult {
    let addr = node_addr(client, node);
    let mut a = client.admin_at(&addr).map_err(text)?;
    let mut req = client.request(pb::TriggerCompactionRequest {});
    req.set_timeout(Duration::from_secs(600));
    let r = a
        .trigger_compaction(req)
        .await
        .map_err(failed_at(&addr))?
        .into_inner();
    let storage = r.storage.unwrap_or_default();
    print(out, &storage_json(&storage), || {
        let mut t = Table::new(&["LEVEL", "FILES", "BYTES"]);
        for l in &storage.levels {
            t.row(vec![
                l.level.to_string(),
                l.files.to_string(),
                bytes(l.bytes),
            ]);
        }
        format!("{addr}: compacted\n{}", t.render())
    });
    Ok(())
}

/// `ctl backup`.
pub async fn backup(client: &Client, name: String, node: Option<String>, out: Format) -> CtlResult {
    let addr = node_addr(client, node);
    let mut a = client.admin_at(&addr).map_err(text)?;
    let mut req = client.request(pb::BackupRequest { name });
    req.set_timeout(Duration::from_secs(600));
    let r = a.backup(req).await.map_err(failed_at(&addr))?.into_inner();
    print(
        out,
        &json!({"node": addr, "path": r.path, "log_index": r.log_index, "bytes": r.bytes, "files": r.files}),
        || {
            format!(
                "{addr}: backup at log index {} in {} ({} files, {})\n",
                r.log_index,
                r.path,
                r.files,
                bytes(r.bytes)
            )
        },
    );
    Ok(())
}

/// `ctl restore`.
pub async fn restore(backup: PathBuf, config: PathBuf, out: Format) -> CtlResult {
    let config = NodeConfig::from_file(&config).map_err(text)?;
    let forced = qastore_cluster::recovery::restore(backup.clone(), &config).await?;
    print(
        out,
        &json!({
            "data_dir": config.data_dir, "cluster_id": config.cluster_id, "node_id": config.node_id,
            "membership_index": forced.membership_index, "term": forced.term,
        }),
        || {
            format!(
                "restored {} into {} as node {} of cluster {:?}; start it with `qastore serve --config <that file>`, then add nodes as learners\n",
                backup.display(),
                config.data_dir.display(),
                config.node_id,
                config.cluster_id
            )
        },
    );
    Ok(())
}

/// `ctl hash`.
pub async fn hash(client: &Client, index: Option<u64>, out: Format) -> CtlResult {
    let index = match index {
        Some(i) => i,
        None => {
            on_leader(client, |mut a| {
                let req = client.request(pb::HashMarkRequest {});
                async move { a.hash_mark(req).await }
            })
            .await?
            .index
        }
    };
    let status = cluster_status(client).await?;
    let mut rows = Vec::new();
    for m in &status.members {
        let r = match client.admin_at(&m.api_addr) {
            Ok(mut a) => {
                let mut req = client.request(pb::StateHashRequest {
                    index,
                    wait_ms: 10_000,
                });
                req.set_timeout(Duration::from_secs(15));
                a.state_hash(req)
                    .await
                    .map(|r| r.into_inner().hash)
                    .map_err(failed_at(&m.api_addr))
            }
            Err(e) => Err(e.to_string()),
        };
        rows.push((m.node_id, r));
    }
    let hashes: std::collections::BTreeSet<u64> = rows
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().copied())
        .collect();
    let all = rows.iter().all(|(_, r)| r.is_ok());
    let same = all && hashes.len() == 1;
    print(
        out,
        &json!({
            "index": index,
            "identical": same,
            "nodes": rows.iter().map(|(id, r)| match r {
                Ok(h) => json!({"node_id": id, "hash": format!("{h:016x}")}),
                Err(e) => json!({"node_id": id, "error": e}),
            }).collect::<Vec<_>>(),
        }),
        || {
            let mut t = Table::new(&["ID", "INDEX", "HASH"]);
            for (id, r) in &rows {
                t.row(vec![
                    id.to_string(),
                    index.to_string(),
                    match r {
                        Ok(h) => format!("{h:016x}"),
                        Err(e) => e.clone(),
                    },
                ]);
            }
            format!(
                "{}{}\n",
                t.render(),
                if same {
                    "identical"
                } else {
                    "DIFFERENT or incomplete"
                }
            )
        },
    );
    if same {
        Ok(())
    } else {
        Err(format!(
            "the replicas' state hashes at index {index} differ or are incomplete"
        ))
    }
}

/// `ctl drill`: exits 0 (pass), 1 (objective missed) or 2 (inconclusive).
pub async fn drill(
    endpoints: &[String],
    tls: Option<qastore_client::ClientTls>,
    token: Option<String>,
    mode: drill::Mode,
    max_unavailable_ms: Option<u64>,
    max_lag: u64,
    out: Format,
) -> ExitCode {
    let client_of = |o: ClientConfig| {
        Client::new(
            endpoints,
            ClientConfig {
                tls: tls.clone(),
                token: token.clone(),
                ..o
            },
        )
        .map_err(|e| e.to_string())
    };
    let settings = drill::DrillConfig {
        mode,
        max_unavailable: max_unavailable_ms.map(Duration::from_millis),
        max_lag,
        give_up_after: Duration::from_secs(60),
    };
    let halt_tls = tls.clone();
    let halt_token = token.clone();
    let report = drill::run(client_of, settings, |leader, api| async move {
        // The leader's process ends at once, as in a crash; its supervisor restarts it.
        let options = ClientConfig {
            tls: halt_tls,
            token: halt_token,
            ..ClientConfig::default()
        };
        let c = Client::new(std::slice::from_ref(&api), options).map_err(|e| e.to_string())?;
        let mut a = c.admin_at(&api).map_err(|e| e.to_string())?;
        a.halt(c.request(pb::HaltRequest { node_id: leader }))
            .await
            .map_err(status_text)?;
        // Gone once it no longer answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut probe = c.request(pb::NodeStatusRequest {});
            probe.set_timeout(Duration::from_millis(200));
            if a.get_node_status(probe).await.is_err() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("node {leader} still answers after being halted"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    print(out, &report.json(), || report.text());
    ExitCode::from(report.verdict.exit_code())
}
