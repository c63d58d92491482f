//! The Parquet files of closed trading days on a real node: `qastore parquet-path` finds them
//! (following the live engine directory), and ticks written for a day after it was converted
//! reach the day's partition as another part file, so the files together hold exactly the
//! ticks the API answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use qastore_client::Client;
use qastore_exchange::olap::parquet::decode_ticks;
use qastore_exchange::query::TimeRange;
use qastore_proto::v1 as pb;
use qastore_testkit::workload::Workload;
use qastore_testkit::{ProcCluster, SERIAL};

/// The `qastore` program cargo built for these tests.
const EXE: &str = env!("CARGO_BIN_EXE_qastore");

const DAY: u32 = 20241202;
const INSTRUMENT: &str = "cu2501";

fn parquet_path(args: &[&str]) -> Output {
    Command::new(EXE)
        .arg("parquet-path")
        .args(args)
        .output()
        .unwrap()
}

fn printed_dir(o: &Output) -> PathBuf {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    PathBuf::from(out.trim_end())
}

/// The part files of `INSTRUMENT`'s partition under a day directory, in part order.
fn part_files(day_dir: &Path) -> Vec<PathBuf> {
    let dir = day_dir.join(format!("instrument={INSTRUMENT}"));
    let Ok(names) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut parts: Vec<(u32, PathBuf)> = names
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
            Some((n.parse().ok()?, e.path()))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, p)| p).collect()
}

/// Rows in the part files, read as a Parquet reader would.
fn rows_in(parts: &[PathBuf]) -> usize {
    parts
        .iter()
        .map(|p| {
            let bytes = bytes::Bytes::from(std::fs::read(p).unwrap());
            decode_ticks(bytes, DAY, INSTRUMENT, TimeRange::all())
                .unwrap()
                .len()
        })
        .sum()
}

/// How many ticks of `DAY` the API answers for `INSTRUMENT`.
async fn api_count(client: &Client) -> usize {
    let (_, leader) = client.find_leader().await.unwrap();
    let mut store = client.store_at(&leader).unwrap();
    let mut token = bytes::Bytes::new();
    let mut count = 0;
    loop {
        let r = store
            .list_ticks(client.request(pb::ListTicksRequest {
                instrument_id: INSTRUMENT.into(),
                limit: 10_000,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        count += r.ticks.iter().filter(|t| t.trading_day == DAY).count();
        if r.next_page_token.is_empty() {
            return count;
        }
        token = r.next_page_token;
    }
}

async fn write_ticks(client: &Client, w: &mut Workload, batches: usize) {
    for _ in 0..batches {
        let batch: Vec<pb::Record> = (0..500).map(|_| w.next_pb()).collect();
        client.write(batch, pb::AckLevel::All).await.unwrap();
    }
}

#[test]
fn parquet_path_follows_the_live_engine_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node1");
    // Not a node's data directory: one line saying so, non-zero exit.
    let o = parquet_path(&["--data-dir", &data.display().to_string()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("node1"), "{err}");
    std::fs::create_dir_all(data.join("engine/db-000001")).unwrap();
    std::fs::write(data.join("engine/ACTIVE"), "db-000001\n").unwrap();
    let d = data.display().to_string();
    let first = printed_dir(&parquet_path(&["--data-dir", &d]));
    assert!(
        first.is_absolute() && first.ends_with("engine/db-000001/olap"),
        "{first:?}"
    );
    // After a snapshot install the node lives in another directory; the answer follows.
    std::fs::create_dir_all(data.join("engine/db-000002")).unwrap();
    std::fs::write(data.join("engine/ACTIVE"), "db-000002\n").unwrap();
    let day = printed_dir(&parquet_path(&[
        "--data-dir",
        &d,
        "--stream",
        "trades",
        "--day",
        "20241202",
    ]));
    assert!(
        day.ends_with("engine/db-000002/olap/trades/trading_day=20241202"),
        "{day:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_ticks_reach_the_days_parquet_files() {
    let _serial = SERIAL.lock().await;
    let c = ProcCluster::start(1, "[raft]\nschedule_interval_secs = 1\n")
        .await
        .unwrap();
    let client = c.client().unwrap();
    let data = c.nodes[&1].data.display().to_string();
    let day_dir = printed_dir(&parquet_path(&[
        "--data-dir",
        &data,
        "--stream",
        "ticks",
        "--day",
        &DAY.to_string(),
    ]));
    // Part of cu2501's night session: the day closed long ago, so the schedule converts it.
    let mut w = Workload::new(7, 2, 3);
    write_ticks(&client, &mut w, 3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while part_files(&day_dir).is_empty() {
        assert!(Instant::now() < deadline, "the day was never converted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = rows_in(&part_files(&day_dir));
    assert!(first > 0);
    // More ticks of the same day arrive after its conversion.
    write_ticks(&client, &mut w, 3).await;
    let expected = api_count(&client).await;
    assert!(
        expected > first,
        "{expected} ticks, {first} converted first"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let parts = part_files(&day_dir);
        let rows = rows_in(&parts);
        if rows == expected {
            assert!(parts.len() >= 2, "{parts:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the day's files hold {rows} ticks in {} parts, the API {expected}",
            parts.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Merged reads count every tick once, with the rows now in two or more files.
    assert_eq!(api_count(&client).await, expected);
}
