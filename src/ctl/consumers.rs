//! `ctl consumers`: the durable consumers, their cursors and lag; show one; delete one.

use clap::Subcommand;
use qastore_client::Client;
use qastore_proto::v1 as pb;
use serde_json::{json, Value};

use super::time::format_time;
use super::{cluster_error, CtlResult};
use crate::output::{print, Format, Table};

/// What `ctl consumers` does.
#[derive(Debug, Clone, Subcommand)]
pub enum ConsumersCommand {
    /// Every durable consumer with its cursor and lag.
    #[command(after_help = "Example:\n  qastore ctl consumers list --output json")]
    List,
    /// One durable consumer.
    #[command(after_help = "Example:\n  qastore ctl consumers show risk")]
    Show {
        /// Its name.
        name: String,
    },
    /// Delete a durable consumer (its cursor no longer holds back journal retention).
    #[command(after_help = "Example:\n  qastore ctl consumers delete risk")]
    Delete {
        /// Its name.
        name: String,
    },
}

fn cursor_text(p: &Option<pb::Position>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{}:{}", p.log_index, p.ordinal))
}

/// A consumer as JSON, its cursor printed `index:ordinal`.
fn consumer_json(c: &pb::ConsumerInfo) -> Value {
    json!({
        "name": c.name,
        "cursor": cursor_text(&c.cursor),
        "lag_entries": c.lag_entries,
        "lag_ms": c.lag_ms,
        "cursor_commit_time_ns": c.cursor_commit_time_ns,
        "expired": c.expired,
        "created_at_ns": c.created_at_ns,
    })
}

fn consumers_table(cs: &[pb::ConsumerInfo]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "CURSOR",
        "LAG ENTRIES",
        "LAG MS",
        "CURSOR COMMITTED",
        "EXPIRED",
        "CREATED",
    ]);
    let time = |ns: i64| {
        if ns == 0 {
            "-".to_string()
        } else {
            format_time(ns)
        }
    };
    for c in cs {
        t.row(vec![
            c.name.clone(),
            cursor_text(&c.cursor),
            c.lag_entries.to_string(),
            c.lag_ms.to_string(),
            time(c.cursor_commit_time_ns),
            if c.expired { "yes" } else { "no" }.into(),
            time(c.created_at_ns),
        ]);
    }
    t.render()
}

/// `ctl consumers`.
pub async fn run(client: &Client, command: &ConsumersCommand, out: Format) -> CtlResult {
    let failed = |e| cluster_error(client, e);
    match command {
        ConsumersCommand::List => {
            let cs = client.list_consumers().await.map_err(failed)?;
            let list: Vec<Value> = cs.iter().map(consumer_json).collect();
            print(out, &json!({ "consumers": list }), || consumers_table(&cs));
        }
        ConsumersCommand::Show { name } => {
            let c = client.consumer(name).await.map_err(failed)?;
            print(out, &consumer_json(&c), || {
                consumers_table(std::slice::from_ref(&c))
            });
        }
        ConsumersCommand::Delete { name } => {
            let deleted = client.delete_consumer(name).await.map_err(failed)?;
            print(out, &json!({"name": name, "deleted": deleted}), || {
                if deleted {
                    format!("deleted consumer {name}\n")
                } else {
                    format!("no consumer {name}\n")
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_prints_its_cursor_as_index_and_ordinal() {
        let c = pb::ConsumerInfo {
            name: "risk".into(),
            cursor: Some(pb::Position {
                log_index: 40,
                ordinal: 2,
            }),
            lag_entries: 5,
            ..Default::default()
        };
        let j = consumer_json(&c);
        assert_eq!(j["cursor"], "40:2");
        assert_eq!(j["lag_entries"], 5);
        let t = consumers_table(&[c]);
        assert!(t.lines().nth(1).unwrap().starts_with("risk  40:2"), "{t}");
    }
}
