//! `qastore ctl`: operate a cluster from the command line.

mod admin;
mod auth;
mod consumers;
pub mod endpoint;
mod query;
mod settings;
mod subscribe;
pub mod time;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use qastore_client::{Client, ClientConfig, ClientError};
use qastore_proto::v1 as pb;

use crate::output::Format;
use qastore_client::drill;

/// Operate a cluster.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  qastore ctl status
  qastore ctl --endpoints http://10.0.0.1:7001,10.0.0.2:7001 members -w json
  qastore ctl orders --user u0001 --consistency bounded --max-staleness-ms 500 --node 127.0.0.1:7002
  qastore ctl ticks --instrument cu2501 --from 2024-12-02 --to 2024-12-03T00:00:00+08:00
  qastore ctl drill kill --max-unavailable-ms 5000
  qastore ctl subscribe --kinds orders,trades --from oldest --output json")]
pub struct CtlArgs {
    /// Client API addresses of the cluster's nodes (any subset), comma-separated: host:port
    /// or http://host:port.
    #[arg(
        long,
        global = true,
        env = "QASTORE_ENDPOINTS",
        value_delimiter = ',',
        value_parser = endpoint::parse_endpoint,
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    endpoints: Vec<String>,
    /// How to print answers (-w as etcdctl spells it).
    #[arg(
        long,
        short = 'o',
        visible_short_alias = 'w',
        global = true,
        value_enum,
        default_value_t = Format::Table
    )]
    output: Format,
    /// Deadline of each call, in milliseconds.
    #[arg(long, global = true, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(flatten)]
    tls: crate::client_tls::TlsArgs,
    #[command(subcommand)]
    command: CtlCommand,
}

/// Read consistency, as the CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsistencyArg {
    /// Sees every write acknowledged before the read (asks the leader).
    Linearizable,
    /// Served locally if at most --max-staleness-ms old, refused otherwise.
    Bounded,
    /// Served locally at once.
    Local,
}

/// Where and how fresh a read is.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// The node to read from (client API address); default the first endpoint.
    #[arg(long, value_parser = endpoint::parse_endpoint)]
    node: Option<String>,
    /// Read consistency.
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
    consistency: ConsistencyArg,
    /// For --consistency bounded: the oldest acceptable state, in milliseconds.
    #[arg(long, default_value_t = 0)]
    max_staleness_ms: u64,
    /// Wait until the node has applied this log index (read your own write).
    #[arg(long, default_value_t = 0)]
    min_applied_index: u64,
}

impl ReadArgs {
    fn options(&self) -> pb::ReadOptions {
        pb::ReadOptions {
            consistency: match self.consistency {
                ConsistencyArg::Linearizable => pb::Consistency::Linearizable,
                ConsistencyArg::Bounded => pb::Consistency::Bounded,
                ConsistencyArg::Local => pb::Consistency::Local,
            } as i32,
            max_staleness_ms: self.max_staleness_ms,
            min_applied_index: self.min_applied_index,
        }
    }
}

/// How a drill takes leadership away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DrillMode {
    /// Hand leadership to the most caught-up follower.
    Planned,
    /// End the leader's process at once.
    Kill,
}

impl From<DrillMode> for drill::Mode {
    fn from(m: DrillMode) -> Self {
        match m {
            DrillMode::Planned => drill::Mode::Planned,
            DrillMode::Kill => drill::Mode::Kill,
        }
    }
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Every member's role, term, log, commit and apply indexes, lag and storage (like
    /// `etcdctl endpoint status`).
    #[command(
        after_help = "Examples:\n  qastore ctl status\n  qastore ctl --endpoints 10.0.0.1:7001 status --output json"
    )]
    Status,
    /// The members, their addresses and whether they vote.
    #[command(after_help = "Example:\n  qastore ctl members")]
    Members,
    /// Write records read as JSON lines (one record per line, e.g.
    /// `{"tick": {...}}`) from a file or standard input, in batches.
    #[command(
        after_help = "Example:\n  echo '{\"order_update\": {\"user_id\": \"u1\", \"order_id\": \"o1\", \"status\": \"FINISHED\", \"time\": 1}}' | qastore ctl write"
    )]
    Write {
        /// The file (default: standard input).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Records per batch.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Wait until every voter has each batch on disk.
        #[arg(long)]
        ack_all: bool,
    },
    /// One order, with its history.
    #[command(after_help = "Example:\n  qastore ctl order --user u0001 --order o00000001")]
    Order {
        /// The user id (e.g. u0001).
        #[arg(long)]
        user: String,
        /// The order id (e.g. o00000001).
        #[arg(long)]
        order: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// A user's orders.
    #[command(after_help = "Example:\n  qastore ctl orders --user u0001 --alive")]
    Orders {
        /// The user id (e.g. u0001).
        #[arg(long)]
        user: String,
        /// Only orders still alive.
        #[arg(long)]
        alive: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// A user's accounts.
    #[command(after_help = "Example:\n  qastore ctl account --user u0001 --currency CNY")]
    Account {
        /// The user id (e.g. u0001).
        #[arg(long)]
        user: String,
        /// One currency (default all).
        #[arg(long, default_value = "")]
        currency: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// A user's positions.
    #[command(after_help = "Example:\n  qastore ctl positions --user u0001")]
    Positions {
        /// The user id (e.g. u0001).
        #[arg(long)]
        user: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// An instrument's ticks in a time range, a page at a time.
    #[command(
        after_help = "Examples:\n  qastore ctl ticks --instrument cu2501 --limit 20\n  qastore ctl ticks --instrument cu2501 --from 2024-12-02T09:00:00+08:00 --to 2024-12-02T10:00:00+08:00"
    )]
    Ticks {
        /// The instrument id (e.g. cu2501).
        #[arg(long)]
        instrument: String,
        #[command(flatten)]
        range: query::RangeArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Trades of an instrument or a user in a time range.
    #[command(after_help = "Example:\n  qastore ctl trades --user u0001")]
    Trades {
        /// Every trade of this instrument (e.g. cu2501).
        #[arg(long, conflicts_with = "user")]
        instrument: Option<String>,
        /// Every trade of this user (e.g. u0001).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        range: query::RangeArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// OHLCV bars of an instrument, a page at a time.
    #[command(
        after_help = "Example:\n  qastore ctl bars --instrument cu2501 --period 1m --source ticks --from 2024-12-02"
    )]
    Bars {
        /// The instrument id (e.g. cu2501).
        #[arg(long)]
        instrument: String,
        /// 1s, 1m, 5m, 15m, 30m, 1h or 1d.
        #[arg(long, default_value = "1m")]
        period: String,
        /// ticks or trades.
        #[arg(long, default_value = "ticks")]
        source: String,
        #[command(flatten)]
        range: query::RangeArgs,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Stream committed events as they are applied (or from an earlier point), one JSON line
    /// or table row per event. Served by a follower when one answers, and resumed on another
    /// node if it fails, without gap or repeat. Runs until --limit events or an error.
    #[command(
        after_help = "Examples:\n  qastore ctl subscribe --kinds orders,trades --users u0001 --output json\n  qastore ctl subscribe --prefixes SHFE.rb --from 2024-12-02T09:00:00+08:00 --limit 100\n  qastore ctl subscribe --consumer risk --from oldest --ack-every 100\n  qastore ctl subscribe --kinds ticks --mode conflated --window-ms 500 --show-progress"
    )]
    Subscribe(subscribe::SubscribeArgs),
    /// Durable consumers: list them, show one, delete one.
    #[command(
        after_help = "Examples:\n  qastore ctl consumers list\n  qastore ctl consumers show risk --output json\n  qastore ctl consumers delete risk"
    )]
    Consumers {
        #[command(subcommand)]
        command: consumers::ConsumersCommand,
    },
    /// The cluster's access table: which roles a client holds in place of its certificate's.
    #[command(
        after_help = "Examples:\n  qastore ctl auth list\n  qastore ctl auth set quant-desk --role reader,subscriber\n  qastore ctl auth set old-feed --none\n  qastore ctl auth remove quant-desk"
    )]
    Auth {
        #[command(subcommand)]
        command: auth::AuthCommand,
    },
    /// The cluster-wide settings every node applies alike: retention, Parquet conversion, the
    /// deduplication window, how long the audit trail keeps its entries.
    #[command(
        after_help = "Examples:\n  qastore ctl settings get\n  qastore ctl settings set 'audit_retention_days = 400'"
    )]
    Settings {
        #[command(subcommand)]
        command: settings::SettingsCommand,
    },
    /// The audit trail of operator actions (the same on every node), or the calls a node
    /// refused (--refused).
    #[command(
        after_help = "Examples:\n  qastore ctl audit\n  qastore ctl audit --action Halt --since 2026-11-29\n  qastore ctl audit --who 'client ops' --failed --output json\n  qastore ctl audit --refused --node 127.0.0.1:7002"
    )]
    Audit(auth::AuditArgs),
    /// Hand leadership to a caught-up voter (nothing to do if it already leads).
    #[command(after_help = "Example:\n  qastore ctl transfer-leader --to 2")]
    TransferLeader {
        /// The node id of the voter to lead.
        #[arg(long)]
        to: u64,
    },
    /// Add a node as a learner (start it first, without --init).
    #[command(
        after_help = "Example:\n  qastore ctl add-learner --id 4 --raft 10.0.0.4:7101 --api 10.0.0.4:7001 --wait-ms 60000"
    )]
    AddLearner {
        /// Its node id: never used in this cluster before, not 0.
        #[arg(long)]
        id: u64,
        /// Where its peer (Raft) service listens, host:port (its `raft_listen`).
        #[arg(long)]
        raft: String,
        /// Where its client API listens, host:port (its `api_listen`).
        #[arg(long, value_parser = endpoint::parse_endpoint)]
        api: String,
        /// Wait until it has caught up (applied the leader's log), at most this long.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
    },
    /// Make a learner a voter.
    #[command(after_help = "Example:\n  qastore ctl promote --id 4")]
    Promote {
        /// The learner's node id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a node from the cluster (it may never rejoin under this id).
    #[command(after_help = "Example:\n  qastore ctl remove --id 3")]
    Remove {
        /// The node id of the member to remove.
        #[arg(long)]
        id: u64,
    },
    /// Take a snapshot on a node now.
    #[command(after_help = "Example:\n  qastore ctl snapshot --node 127.0.0.1:7002")]
    Snapshot {
        /// The node's client API address (default: the first endpoint).
        #[arg(long, value_parser = endpoint::parse_endpoint)]
        node: Option<String>,
    },
    /// Compact a node's storage fully now.
    #[command(after_help = "Example:\n  qastore ctl compact --node 127.0.0.1:7001")]
    Compact {
        /// The node's client API address (default: the first endpoint).
        #[arg(long, value_parser = endpoint::parse_endpoint)]
        node: Option<String>,
    },
    /// Write a backup of a node's state into its backup directory.
    #[command(after_help = "Example:\n  qastore ctl backup --name nightly-20241206")]
    Backup {
        /// The backup's name (a plain directory name).
        #[arg(long)]
        name: String,
        /// The node's client API address (default: the first endpoint).
        #[arg(long, value_parser = endpoint::parse_endpoint)]
        node: Option<String>,
    },
    /// Make a backup the state of a new data directory, from which a new one-node cluster
    /// starts (`qastore serve --config <config>`); then add more nodes as learners. Offline:
    /// talks to no cluster.
    #[command(
        after_help = "Example:\n  qastore ctl restore --backup /var/lib/qastore/backups/nightly --config restored-node1.toml"
    )]
    Restore {
        /// The backup directory (as `backup` wrote it).
        #[arg(long)]
        backup: PathBuf,
        /// The new node's config file: its cluster id, node id, data dir (must be new) and
        /// addresses.
        #[arg(long)]
        config: PathBuf,
        // Restore talks to no cluster: these stand in for the global connection options so
        // that its help does not offer them (given anyway, they are ignored).
        #[arg(long, hide = true, value_delimiter = ',', value_parser = endpoint::parse_endpoint)]
        endpoints: Vec<String>,
        #[arg(long, hide = true)]
        timeout_ms: Option<u64>,
    },
    /// Every node's state hash at one applied index (equal hashes: identical replicas).
    #[command(after_help = "Example:\n  qastore ctl hash")]
    Hash {
        /// The log index to compare at: the index of a hash mark (every node hashes its state
        /// when it applies the mark; an earlier `ctl hash` prints it), or exactly the nodes'
        /// applied index on a cluster taking no writes. Default: the leader puts a new hash
        /// mark in the log and its index is used.
        #[arg(long)]
        index: Option<u64>,
    },
    /// A failover drill. Checks health and lag first and refuses with a reason; measures the
    /// time to a new leader and the write-unavailability window; verifies that acknowledged
    /// sentinel writes survive. Exit 0: pass, 1: objective missed, 2: inconclusive.
    #[command(
        after_help = "Examples:\n  qastore ctl drill planned\n  qastore ctl drill kill --max-unavailable-ms 5000 --output json"
    )]
    Drill {
        /// planned (transfer leadership) or kill (the leader's process ends).
        #[arg(value_enum)]
        mode: DrillMode,
        /// The objective: the longest acceptable write outage (default: the leader's
        /// configured drill objective, 10000).
        #[arg(long)]
        max_unavailable_ms: Option<u64>,
        /// Refuse if a member is more entries behind the leader than this.
        #[arg(long, default_value_t = 1000)]
        max_lag: u64,
    },
}

/// What a command failed with: one line.
pub type CtlResult = Result<(), String>;

/// A status as one line: `CODE: message` (the same text the client library's errors show).
pub fn status_text(s: tonic::Status) -> String {
    qastore_client::ClientError::from(s).to_string()
}

/// A failed call to the node at `addr`, as one line naming the node.
pub fn failed_at(addr: &str) -> impl Fn(tonic::Status) -> String + '_ {
    move |s| format!("{addr}: {}", status_text(s))
}

/// A failed call to the cluster through the client library. Failing to reach a node says
/// which addresses were tried (the transport's own message names none).
pub fn cluster_error(client: &Client, e: ClientError) -> String {
    let unreachable = matches!(e, ClientError::NoLeader(_))
        || matches!(
            e.code(),
            Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
        );
    if unreachable {
        format!("{e} (endpoints: {})", client.endpoints().join(","))
    } else {
        e.to_string()
    }
}

/// Runs a `ctl` command.
pub async fn run(args: CtlArgs) -> ExitCode {
    let (tls, token) = match args.tls.resolve() {
        Ok(p) => (p.tls, p.token),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let client = || -> Result<Client, String> {
        Client::new(
            &args.endpoints,
            ClientConfig {
                client_id: format!("ctl-{}", std::process::id()),
                call_timeout: Duration::from_millis(args.timeout_ms),
                retry_for: Duration::from_millis(args.timeout_ms),
                tls: tls.clone(),
                token: token.clone(),
                ..ClientConfig::default()
            },
        )
        .map_err(|e| e.to_string())
    };
    let out = args.output;
    if let CtlCommand::Drill {
        mode,
        max_unavailable_ms,
        max_lag,
    } = args.command
    {
        return admin::drill(
            &args.endpoints,
            tls,
            token,
            mode.into(),
            max_unavailable_ms,
            max_lag,
            out,
        )
        .await;
    }
    let result: CtlResult = async {
        match args.command {
            CtlCommand::Status => admin::status(&client()?, out).await,
            CtlCommand::Members => admin::members(&client()?, out).await,
            CtlCommand::Write {
                file,
                batch,
                ack_all,
            } => write::run(&client()?, file, batch, ack_all, out).await,
            CtlCommand::Order { user, order, read } => {
                query::order(&client()?, &user, &order, &read, out).await
            }
            CtlCommand::Orders { user, alive, read } => {
                query::orders(&client()?, &user, alive, &read, out).await
            }
            CtlCommand::Account {
                user,
                currency,
                read,
            } => query::account(&client()?, &user, &currency, &read, out).await,
            CtlCommand::Positions { user, read } => {
                query::positions(&client()?, &user, &read, out).await
            }
            CtlCommand::Ticks {
                instrument,
                range,
                read,
            } => query::ticks(&client()?, &instrument, &range, &read, out).await,
            CtlCommand::Trades {
                instrument,
                user,
                range,
                read,
            } => query::trades(&client()?, instrument, user, &range, &read, out).await,
            CtlCommand::Bars {
                instrument,
                period,
                source,
                range,
                read,
            } => {
                query::bars(
                    &client()?,
                    &instrument,
                    &period,
                    &source,
                    &range,
                    &read,
                    out,
                )
                .await
            }
            CtlCommand::Subscribe(sub) => subscribe::run(&client()?, &sub, out).await,
            CtlCommand::Consumers { command } => consumers::run(&client()?, &command, out).await,
            CtlCommand::Auth { command } => auth::run(&client()?, &command, out).await,
            CtlCommand::Audit(args) => auth::audit(&client()?, &args, out).await,
            CtlCommand::Settings { command } => settings::run(&client()?, &command, out).await,
            CtlCommand::TransferLeader { to } => admin::transfer(&client()?, to, out).await,
            CtlCommand::AddLearner {
                id,
                raft,
                api,
                wait_ms,
            } => admin::add_learner(&client()?, id, raft, api, wait_ms, out).await,
            CtlCommand::Promote { id } => admin::promote(&client()?, id, out).await,
            CtlCommand::Remove { id } => admin::remove(&client()?, id, out).await,
            CtlCommand::Snapshot { node } => admin::snapshot(&client()?, node, out).await,
            CtlCommand::Compact { node } => admin::compact(&client()?, node, out).await,
            CtlCommand::Backup { name, node } => admin::backup(&client()?, name, node, out).await,
            CtlCommand::Restore { backup, config, .. } => admin::restore(backup, config, out).await,
            CtlCommand::Hash { index } => admin::hash(&client()?, index, out).await,
            CtlCommand::Drill { .. } => unreachable!("handled above"),
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = e.lines().next().unwrap_or("");
            // A node on TLS answers a plain HTTP/2 preface with a TLS alert (read as an HTTP/2
            // protocol error) or by closing the connection (a transport error), depending on
            // which the client notices first.
            let transport = line.contains("h2 protocol error") || line.contains("transport error");
            let hint = if tls.is_none() && transport {
                " (if the cluster runs TLS, give --cert-dir, or --ca-file, --cert-file and --key-file)"
            } else {
                ""
            };
            eprintln!("error: {line}{hint}");
            ExitCode::from(1)
        }
    }
}
