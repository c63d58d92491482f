//! `ctl settings`: the cluster-wide settings every node applies alike, shown and changed
//! through the log.

use clap::Subcommand;
use qastore_client::Client;
use qastore_proto::v1 as pb;
use serde_json::json;

use super::admin::on_leader;
use super::CtlResult;
use crate::output::{print, Format};

/// What `ctl settings` does.
#[derive(Debug, Clone, Subcommand)]
pub enum SettingsCommand {
    /// Every setting with its value in effect (TOML).
    #[command(after_help = "Example:\n  qastore ctl settings get")]
    Get,
    /// Change settings (TOML: `key = value`, `[table]` for nested ones); the others keep their
    /// value. Goes through the log and onto the audit trail.
    #[command(
        after_help = "Examples:\n  qastore ctl settings set 'audit_retention_days = 400'\n  qastore ctl settings set 'dedup_window_entries = 2000000' 'olap_conversion = false'\n  qastore ctl settings set '[retention]' 'keep_trading_days = 20'"
    )]
    Set {
        /// TOML lines, joined in the order given.
        #[arg(required = true)]
        lines: Vec<String>,
    },
}

/// `ctl settings`.
pub async fn run(client: &Client, command: &SettingsCommand, out: Format) -> CtlResult {
    let settings = match command {
        SettingsCommand::Get => {
            on_leader(client, |mut a| {
                let req = client.request(pb::GetClusterSettingsRequest {});
                async move { a.get_cluster_settings(req).await }
            })
            .await?
        }
        SettingsCommand::Set { lines } => {
            let toml = lines.join("\n");
            on_leader(client, |mut a| {
                let req = client.request(pb::SetClusterSettingsRequest { toml: toml.clone() });
                async move { a.set_cluster_settings(req).await }
            })
            .await?
        }
    };
    print(out, &json!({ "toml": settings.toml }), || {
        settings.toml.clone()
    });
    Ok(())
}
