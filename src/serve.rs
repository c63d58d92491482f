//! `qastore serve`: one node, from a config file and/or flags, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use qastore_cluster::config::InitialMember;
use qastore_cluster::NodeConfig;

use crate::logging::LogFormat;

/// Run one node.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # a node from its config file
  qastore serve --config /etc/qastore/node1.toml
  # the first node of a new three-node cluster, from flags (forms the cluster once)
  qastore serve --id 1 --data-dir /var/lib/qastore --api 10.0.0.1:7001 --raft 10.0.0.1:7101 \\
      --http 10.0.0.1:7201 --peer 1=10.0.0.1:7101/10.0.0.1:7001 \\
      --peer 2=10.0.0.2:7101/10.0.0.2:7001 --peer 3=10.0.0.3:7101/10.0.0.3:7001 --init
  # quorum is lost for good: make this node a one-node cluster of its own data
  qastore serve --config node1.toml --force-new-cluster")]
pub struct ServeArgs {
    /// The node's config file (TOML); flags override its values.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The node id (not 0; never reused).
    #[arg(long)]
    id: Option<u64>,
    /// The cluster id.
    #[arg(long)]
    cluster_id: Option<String>,
    /// The data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The client/admin gRPC address.
    #[arg(long)]
    api: Option<SocketAddr>,
    /// The peer (Raft) gRPC address.
    #[arg(long)]
    raft: Option<SocketAddr>,
    /// The HTTP address (metrics, health, JSON admin).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// An initial member: `ID=RAFT_ADDR/API_ADDR` (repeat for each).
    #[arg(long = "peer", value_name = "ID=RAFT/API")]
    peers: Vec<String>,
    /// Form the cluster of the initial members if this node's data directory is new (run it
    /// on one node only).
    #[arg(long)]
    init: bool,
    /// Recovery after quorum is lost for good: rewrite this node's membership so that it
    /// alone forms the cluster, keeping all its data; then add new nodes to it. Refused
    /// without this flag; never use it while other members may still be running.
    #[arg(long)]
    force_new_cluster: bool,
    /// Run without TLS, knowingly: anyone who reaches the node's ports may write, read and
    /// operate it. Without this (or `insecure = true` in the config), a config with no [tls]
    /// section is refused.
    #[arg(long)]
    insecure: bool,
    /// How to write log lines on stderr: text (coloured only on a terminal) or one JSON object
    /// per line. RUST_LOG sets the filter (default: `info,openraft=warn`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

impl ServeArgs {
    /// The log format asked for.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

fn parse_peer(text: &str) -> Result<InitialMember, String> {
    let bad = || format!("--peer {text:?}: expected ID=RAFT_ADDR/API_ADDR");
    let (id, addrs) = text.split_once('=').ok_or_else(bad)?;
    let (raft, api) = addrs.split_once('/').ok_or_else(bad)?;
    Ok(InitialMember {
        id: id.parse().map_err(|_| bad())?,
        raft: raft.to_string(),
        api: api.to_string(),
    })
}

/// The node's config: the file's, with the flags on top.
fn config(args: &ServeArgs) -> Result<NodeConfig, String> {
    let mut c = match &args.config {
        Some(path) => NodeConfig::from_file(path).map_err(|e| e.to_string())?,
        None => NodeConfig::default(),
    };
    if let Some(id) = args.id {
        c.node_id = id;
    }
    if let Some(cid) = &args.cluster_id {
        c.cluster_id = cid.clone();
    }
    if let Some(d) = &args.data_dir {
        c.data_dir = d.clone();
    }
    if let Some(a) = args.api {
        c.api_listen = a;
    }
    if let Some(a) = args.raft {
        c.raft_listen = a;
    }
    if let Some(a) = args.http {
        c.http_listen = a;
    }
    if !args.peers.is_empty() {
        c.initial_members = args
            .peers
            .iter()
            .map(|p| parse_peer(p))
            .collect::<Result<_, _>>()?;
    }
    if args.insecure {
        if c.tls_on() {
            return Err(
                "--insecure: the config's [tls] section turns TLS on; remove one or the other"
                    .into(),
            );
        }
        c.insecure = true;
    }
    c.validate().map_err(|e| e.to_string())?;
    if !c.tls_on() && !c.insecure {
        return Err(format!(
            "refusing to start node {} without TLS: give the config a [tls] section (make the \
             files with `qastore certs init` and `qastore certs node`), or run it insecure on \
             purpose with --insecure (or `insecure = true`)",
            c.node_id
        ));
    }
    Ok(c)
}

/// Runs the node until SIGTERM or Ctrl-C, then shuts it down gracefully.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let config = config(&args)?;
    if args.force_new_cluster {
        qastore_cluster::recovery::force_new_cluster(&config)
            .await
            .map_err(|e| format!("--force-new-cluster: {e}"))?;
    }
    let running = qastore_cluster::start(config, args.init)
        .await
        .map_err(|e| e.to_string())?;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| format!("installing the SIGTERM handler: {e}"))?;
    let mut hup =
        signal(SignalKind::hangup()).map_err(|e| format!("installing the SIGHUP handler: {e}"))?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupt received");
                break;
            }
            _ = hup.recv() => match running.reload_tls() {
                Ok(()) => tracing::info!("SIGHUP: TLS files read again"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: the TLS files do not load; the previous ones stay in use"),
            },
        }
    }
    running
        .shutdown(Duration::from_secs(10))
        .await
        .map_err(|e| format!("shutting down: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_say_why() {
        let p = parse_peer("2=10.0.0.2:7101/10.0.0.2:7001").unwrap();
        assert_eq!(
            (p.id, p.raft.as_str(), p.api.as_str()),
            (2, "10.0.0.2:7101", "10.0.0.2:7001")
        );
        assert!(parse_peer("2=10.0.0.2:7101")
            .unwrap_err()
            .contains("--peer"));
        assert!(parse_peer("x=a/b").is_err());
    }
}
