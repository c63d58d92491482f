//! `Admin.GetClusterSettings` and `Admin.SetClusterSettings`: the cluster-wide settings every
//! node applies alike, read as this node applied them and changed through the log. A change
//! names only the settings it changes; it is merged onto the settings in force, checked, and
//! refused as a whole (naming the setting) if any part is wrong.

use qastore_exchange::{ClusterConfig, Command, Response, SystemCommand};
use qastore_proto::v1 as pb;
use tonic::Status;

use crate::error::ApiError;
use crate::node::Node;
use crate::replicated::request;

fn invalid(message: String) -> Status {
    ApiError::InvalidArgument(message).into()
}

/// `Admin.GetClusterSettings`: the settings this node has applied.
pub fn get(node: &Node) -> pb::ClusterSettings {
    pb::ClusterSettings {
        toml: node.raft.app().settings().to_toml(),
    }
}

/// Puts every key of `change` into `base`, table into table.
fn merge(base: &mut toml::Table, change: toml::Table) {
    for (key, value) in change {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => merge(inner, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The settings in force with `change` (TOML) merged onto them, checked.
pub fn merged(current: &ClusterConfig, change: &str) -> Result<String, Status> {
    let change: toml::Table = change
        .parse()
        .map_err(|e: toml::de::Error| invalid(format!("field toml: {}", e.message())))?;
    if change.is_empty() {
        return Err(invalid("field toml: names no setting".into()));
    }
    let mut base: toml::Table = current
        .to_toml()
        .parse()
        .map_err(|e: toml::de::Error| ApiError::Internal(format!("settings in force: {e}")))?;
    merge(&mut base, change);
    let text = base.to_string();
    ClusterConfig::from_toml(&text).map_err(|e| invalid(format!("field toml: {e}")))?;
    Ok(text)
}

/// `Admin.SetClusterSettings`, on the leader: merges the change onto the settings in force and
/// proposes the result.
pub async fn set(
    node: &Node,
    req: pb::SetClusterSettingsRequest,
) -> Result<pb::ClusterSettings, Status> {
    node.check_serving()?;
    let text = merged(&node.raft.app().settings(), &req.toml)?;
    let cmd = Command::System(SystemCommand::SetClusterSettings { toml: text });
    let (_, response) = node
        .raft
        .propose(request(&cmd), node.write_timeout())
        .await
        .map_err(ApiError::from)?;
    match response {
        Response::SettingsChanged => Ok(get(node)),
        Response::Refused { reason } => Err(invalid(format!("field toml: {reason}"))),
        other => Err(ApiError::Internal(format!("unexpected answer {other:?}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_keeps_the_settings_it_does_not_name() {
        let current = ClusterConfig::from_toml(
            "dedup_window_entries = 7\n[retention]\nkeep_log_entries = 9\n",
        )
        .unwrap();
        let text = merged(
            &current,
            "audit_retention_days = 400\n[retention]\nkeep_trading_days = 20\n",
        )
        .unwrap();
        let s = ClusterConfig::from_toml(&text).unwrap();
        assert_eq!(s.audit_retention_days, 400);
        assert_eq!(s.dedup_window_entries, 7);
        assert_eq!(s.retention.keep_trading_days, Some(20));
        assert_eq!(s.retention.keep_log_entries, Some(9));
    }

    #[test]
    fn a_wrong_change_is_refused_naming_the_setting() {
        let current = ClusterConfig::default();
        for (change, names) in [
            ("audit_retention_dayz = 4", "audit_retention_dayz"),
            ("dedup_window_entries = 0", "dedup_window_entries"),
            ("audit_retention_days = \"long\"", "audit_retention_days"),
            ("not toml", "field toml"),
            ("", "names no setting"),
        ] {
            let e = merged(&current, change).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(names), "{change}: {}", e.message());
        }
    }
}
