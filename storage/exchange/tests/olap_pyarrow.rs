//! Users open our Parquet files in pandas, polars or duckdb. This test converts a generated
//! trading day and has pyarrow read the files: schema and types, compression, statistics and the
//! page index, sort order, values, and the hive-partitioned directory as a dataset, with late
//! rows in a second part file of each partition.
//!
//! pyarrow is installed from PyPI into a project-local virtual environment
//! (`target/pyarrow-venv`) the first time the test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use qastore_exchange::apply::apply;
use qastore_exchange::calendar::TradingCalendar;
use qastore_exchange::datagen::{ExchangeGen, GenConfig};
use qastore_exchange::keys::Stream;
use qastore_exchange::olap;
use qastore_exchange::query::{PageRequest, Queries, TimeRange};
use qastore_exchange::record::Record;
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::WriteBatch;
use qastore_lsm::{Engine, EngineConfig};

/// The shared test venv helper (also used by the root crate's Python tests).
#[path = "../../../tests/python/venv.rs"]
mod venv;

const PYARROW: &str = "pyarrow==26.0.1\n";

/// The venv's python with pyarrow installed, creating it if needed.
fn python() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    venv::python_with(&workspace, "pyarrow-venv", PYARROW)
}

const CHECK: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds

spec = json.load(open(sys.argv[1]))

f = pq.ParquetFile(spec["tick_file"])
s = f.schema_arrow
expect = {
    "instrument_id": pa.string(), "datetime": pa.timestamp("ns", tz="UTC"),
    "sequence": pa.uint64(), "last_price": pa.float64(), "volume": pa.int64(),
    "amount": pa.float64(), "open_interest": pa.int64(), "bid_price1": pa.float64(),
    "ask_volume5": pa.int64(), "upper_limit": pa.float64(),
}
for name, ty in expect.items():
    assert s.field(name).type == ty, (name, s.field(name).type)
    assert not s.field(name).nullable, name
assert "trading_day" not in s.names, "the trading day is the partition key, not a column"
md = f.metadata
assert md.num_rows == spec["tick_rows"], (md.num_rows, spec["tick_rows"])
col = md.row_group(0).column(1)
assert col.path_in_schema == "datetime"
assert col.compression == "ZSTD", col.compression
assert col.statistics is not None and col.statistics.has_min_max
assert col.has_column_index and col.has_offset_index, "page index"
t = f.read()
times = t.column("datetime").cast(pa.int64()).to_pylist()
assert times == sorted(times), "rows sorted by time"
first = spec["first_tick"]
assert times[0] == first["datetime"]
for k in ("instrument_id", "sequence", "last_price", "volume", "amount", "open_interest", "bid_price1", "ask_volume5"):
    assert t.column(k)[0].as_py() == first[k], (k, t.column(k)[0].as_py(), first[k])

d = ds.dataset(spec["tick_root"], format="parquet", partitioning="hive").to_table()
assert d.num_rows == spec["all_tick_rows"], (d.num_rows, spec["all_tick_rows"])
assert "trading_day" in d.schema.names and "instrument" in d.schema.names
days = set(d.column("trading_day").to_pylist())
assert days == {spec["day"]}, days
assert pq.read_table(spec["tick_root"]).num_rows == spec["all_tick_rows"]
import os
part_dir = os.path.dirname(spec["tick_file"])
assert sorted(os.listdir(part_dir)) == ["part-0.parquet", "part-1.parquet"], os.listdir(part_dir)

tr = pq.read_table(spec["trade_file"])
assert tr.schema.field("trade_date_time").type == pa.timestamp("ns", tz="UTC")
assert set(tr.column("direction").to_pylist()) <= {"BUY", "SELL"}
assert sum(tr.column("volume").to_pylist()) == spec["trade_volume"]
print("pyarrow read", md.num_rows, "ticks and", tr.num_rows, "trades")
"#;

#[test]
fn pyarrow_reads_our_parquet_files() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Engine::open(
        OsVfs::shared(),
        tmp.path().join("db"),
        EngineConfig::default(),
    )
    .unwrap();
    let day = 20241202;
    let mut gen = ExchangeGen::new(
        GenConfig {
            instruments: 2,
            order_rate: 0.1,
            ..GenConfig::default()
        },
        TradingCalendar::builtin(),
    );
    // Every fifth tick arrives only after the day was converted (late rows): the partitions
    // end up with two part files each, and a reader of the directory must see them all.
    let (mut on_time, mut late) = (Vec::new(), Vec::new());
    for (i, r) in gen.trading_day(day).into_iter().flatten().enumerate() {
        if matches!(r, Record::Tick(_)) && i.is_multiple_of(5) {
            late.push(r);
        } else {
            on_time.push(r);
        }
    }
    let mut index = 0;
    for b in on_time.chunks(500) {
        index += 1;
        apply(&e, b, index).unwrap();
    }
    let ticks = olap::convert_day(&e, Stream::Ticks, day, index + 1, WriteBatch::new()).unwrap();
    let trades = olap::convert_day(&e, Stream::Trades, day, index + 2, WriteBatch::new()).unwrap();
    index += 2;
    for b in late.chunks(500) {
        index += 1;
        apply(&e, b, index).unwrap();
    }
    let again = olap::convert_day(&e, Stream::Ticks, day, index + 1, WriteBatch::new()).unwrap();
    assert!(again.partitions.iter().all(|p| p.part() == 1));
    assert_eq!(again.late_rows as usize, late.len());
    let q = Queries::new(&e);
    let all_ticks: usize = gen
        .instrument_ids()
        .iter()
        .map(|i| {
            let mut n = 0;
            let mut page = PageRequest::first(10_000);
            loop {
                let p = q.ticks(i, TimeRange::all(), &page).unwrap();
                n += p.items.len();
                match p.next {
                    Some(t) => page.token = Some(t),
                    None => return n,
                }
            }
        })
        .sum();
    let tick_part = ticks
        .partitions
        .iter()
        .find(|p| p.instrument == "IF2412")
        .unwrap();
    let trade_part = &trades.partitions[0];
    let trade_volume: i64 = olap::read_partition_trades(&e, trade_part, TimeRange::all())
        .unwrap()
        .iter()
        .map(|t| t.volume)
        .sum();
    let part0 = olap::read_partition_ticks(&e, tick_part, TimeRange::all()).unwrap();
    let first = &part0[0];
    let spec = format!(
        r#"{{"tick_file": "{}", "tick_rows": {}, "all_tick_rows": {}, "tick_root": "{}",
            "trade_file": "{}", "trade_volume": {}, "day": {},
            "first_tick": {{"instrument_id": "{}", "datetime": {}, "sequence": {},
              "last_price": {:?}, "volume": {}, "amount": {:?}, "open_interest": {},
              "bid_price1": {:?}, "ask_volume5": {}}}}}"#,
        e.dir().join(&tick_part.file).display(),
        tick_part.rows,
        all_ticks,
        e.dir().join("olap/ticks").display(),
        e.dir().join(&trade_part.file).display(),
        trade_volume,
        day,
        first.instrument_id,
        first.datetime,
        first.sequence,
        first.last_price,
        first.volume,
        first.amount,
        first.open_interest,
        first.bid_price[0],
        first.ask_volume[4],
    );
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec).unwrap();
    let script = tmp.path().join("check.py");
    std::fs::write(&script, CHECK).unwrap();
    let out = Command::new(python())
        .arg(&script)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
