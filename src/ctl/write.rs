//! `ctl write`: records from JSON lines, written in batches through the leader.

use std::io::BufRead;
use std::path::PathBuf;

use qastore_client::Client;
use qastore_proto::v1 as pb;
use serde_json::json;

use super::{cluster_error, CtlResult};
use crate::output::{print, Format};

/// Reads every record first (a bad line stops everything before anything is written), then
/// writes them in batches of `batch`.
pub async fn run(
    client: &Client,
    file: Option<PathBuf>,
    batch: usize,
    ack_all: bool,
    out: Format,
) -> CtlResult {
    let reader: Box<dyn BufRead> = match &file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut records = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("reading line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: pb::Record =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        records.push(r);
    }
    if records.is_empty() {
        return Err("no records to write".into());
    }
    let ack = if ack_all {
        pb::AckLevel::All
    } else {
        pb::AckLevel::Quorum
    };
    let mut batches = Vec::new();
    for chunk in records.chunks(batch.clamp(1, 10_000)) {
        let r = client
            .write(chunk.to_vec(), ack)
            .await
            .map_err(|e| cluster_error(client, e))?;
        batches.push(r);
    }
    let last = batches.last().map_or(0, |b| b.log_index);
    print(
        out,
        &json!({
            "records": records.len(),
            "batches": batches.iter().map(|b| json!({
                "log_index": b.log_index, "duplicate": b.duplicate, "results": b.results,
            })).collect::<Vec<_>>(),
        }),
        || {
            format!(
                "wrote {} records in {} batches; last log index {last} (read it anywhere with --min-applied-index {last})\n",
                records.len(),
                batches.len()
            )
        },
    );
    Ok(())
}
