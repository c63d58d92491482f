//! The storage engine side by side with fjall, db_bench style, in one process on one machine.
//!
//! Both stores get the same keys (16 bytes) and values (100 bytes, then 1 KiB), written in
//! batches of 100 records:
//!
//! * `sync`: QAStore appends each batch to its WAL as one entry and waits for the fsync, then
//!   applies it to the engine (what a node does per Raft entry); fjall commits each batch with
//!   its journal persisted (`SyncData`).
//! * `nosync`: neither waits for a sync. QAStore's WAL still fsyncs in the background (there is
//!   no way to turn that off); fjall flushes its journal to the OS per batch.
//!
//! Rows: fillseq and fillrandom (fresh stores), overwrite (random existing keys, on the
//! fillrandom store, long enough to compact through several levels), readrandom hits and misses
//! and seek + scan 100 (after the writes, once background work has settled). The WAL is purged
//! up to the engine's flushed index as it goes, the way Raft purges after snapshots.
//!
//! With 1 KiB values the fillrandom store holds 1 GiB: its write amplification (table bytes,
//! and all bytes the process wrote per byte of user data, from /proc/self/io) and its reopen
//! time (QAStore: WAL recovery, engine open and replay of the unflushed tail; fjall: open and
//! journal recovery) are reported too.
//!
//! Run: `cargo bench -p qastore-benches --bench db_bench` (set `DB_BENCH_SCALE=0.1` for a quick
//! run; the full run takes about 15 minutes on two cores).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use qastore_benches::{absent_key16, key16, value};
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::wal::{LogId, Wal, WalConfig, WalEntry};
use qastore_lsm::{Engine, EngineConfig, WriteBatch};

// The allocator the qastore binary ships with, for both stores alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
const BATCH: usize = 100;

/// A store under test.
trait Store {
    fn write(&mut self, batch: &[([u8; 16], Vec<u8>)], sync: bool);
    fn get(&self, key: &[u8; 16]) -> bool;
    fn scan(&self, from: &[u8; 16], n: usize) -> usize;
    /// Waits (a bounded time) for background flushes and compactions.
    fn settle(&mut self);
}

struct Ours {
    wal: Wal,
    engine: Engine,
    next: u64,
    purged: u64,
}

fn wal_opts() -> WalConfig {
    WalConfig::default()
}

impl Ours {
    fn open(dir: &Path) -> Ours {
        let wal = Wal::open(OsVfs::shared(), dir.join("wal"), wal_opts()).unwrap();
        let engine =
            Engine::open(OsVfs::shared(), dir.join("db"), EngineConfig::default()).unwrap();
        let ours = Ours {
            next: wal.last_index().unwrap_or(0) + 1,
            purged: wal.meta().last_purged.map_or(0, |p| p.index),
            wal,
            engine,
        };
        // Recovery: re-apply what the log holds beyond the engine's flushed index.
        let from = ours.engine.flushed_index() + 1;
        if from < ours.next {
            for e in ours.wal.read(from..ours.next).unwrap() {
                let batch = decode(&e.payload);
                ours.engine.apply(&batch, e.index).unwrap();
            }
        }
        ours
    }
}

/// The WAL entry for a batch: records as (key len u16, value len u32, key, value).
fn encode(batch: &[([u8; 16], Vec<u8>)]) -> Bytes {
    let mut out = Vec::with_capacity(batch.len() * (22 + batch[0].1.len()));
    for (k, v) in batch {
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    Bytes::from(out)
}

fn decode(payload: &Bytes) -> WriteBatch {
    let mut b = WriteBatch::new();
    let mut pos = 0;
    while pos + 6 <= payload.len() {
        let kl = u16::from_le_bytes([payload[pos], payload[pos + 1]]) as usize;
        let vl = u32::from_le_bytes(payload[pos + 2..pos + 6].try_into().unwrap()) as usize;
        pos += 6;
        b.put(
            payload.slice(pos..pos + kl),
            payload.slice(pos + kl..pos + kl + vl),
        );
        pos += kl + vl;
    }
    b
}

impl Store for Ours {
    fn write(&mut self, batch: &[([u8; 16], Vec<u8>)], sync: bool) {
        let entry = WalEntry::new(self.next, 1, encode(batch));
        if sync {
            self.wal.append_sync(&[entry]).unwrap();
        } else {
            self.wal.append(&[entry], |_| {}).unwrap();
        }
        let mut b = WriteBatch::new();
        for (k, v) in batch {
            b.put(k.to_vec(), v.clone());
        }
        self.engine.apply(&b, self.next).unwrap();
        self.next += 1;
        if self.next.is_multiple_of(256) {
            let flushed = self.engine.flushed_index();
            if flushed > self.purged {
                self.wal.purge_up_to(LogId::new(1, flushed)).unwrap();
                self.purged = flushed;
            }
        }
    }

    fn get(&self, key: &[u8; 16]) -> bool {
        self.engine.get(key).unwrap().is_some()
    }

    fn scan(&self, from: &[u8; 16], n: usize) -> usize {
        self.engine
            .scan(
                std::ops::Bound::Included(&from[..]),
                std::ops::Bound::Unbounded,
            )
            .take(n)
            .map(|r| r.unwrap().1.len())
            .sum()
    }

    fn settle(&mut self) {
        self.engine.wait_for_compactions().unwrap();
    }
}

struct Theirs {
    db: Database,
    ks: Keyspace,
}

impl Theirs {
    fn open(dir: &Path) -> Theirs {
        let db = Database::builder(dir).open().unwrap();
        let ks = db
            .keyspace("bench", KeyspaceCreateOptions::default)
            .unwrap();
        Theirs { db, ks }
    }
}

impl Store for Theirs {
    fn write(&mut self, batch: &[([u8; 16], Vec<u8>)], sync: bool) {
        let mut b = self.db.batch();
        if sync {
            b = b.durability(Some(PersistMode::SyncData));
        }
        for (k, v) in batch {
            b.insert(&self.ks, *k, v.clone());
        }
        b.commit().unwrap();
    }

    fn get(&self, key: &[u8; 16]) -> bool {
        self.ks.get(key).unwrap().is_some()
    }

    fn scan(&self, from: &[u8; 16], n: usize) -> usize {
        self.ks
            .range(*from..)
            .take(n)
            .map(|g| g.value().unwrap().len())
            .sum()
    }

    fn settle(&mut self) {
        // fjall has no call that waits for its background work; wait until its table count
        // holds still for a second (at most a minute).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = self.ks.table_count();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            let now = self.ks.table_count();
            if now == last {
                break;
            }
            last = now;
        }
    }
}

/// Bytes this process has written to storage so far (Linux /proc/self/io `write_bytes`).
fn process_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
}

fn ops_per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

struct Row {
    name: String,
    ours: f64,
    theirs: f64,
}

fn fill(
    store: &mut dyn Store,
    keys: impl Iterator<Item = [u8; 16]>,
    n: u64,
    len: usize,
    sync: bool,
) -> Duration {
    let start = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for (i, k) in keys.take(n as usize).enumerate() {
        batch.push((k, value(i as u64, len)));
        if batch.len() == BATCH {
            store.write(&batch, sync);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.write(&batch, sync);
    }
    start.elapsed()
}

fn seq_key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// A cheap, deterministic stream of indexes in 0..n.
fn picks(n: u64, seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    })
}

struct Env {
    root: PathBuf,
    n: u64,
    len: usize,
}

impl Env {
    fn fresh(&self, who: &str, row: &str) -> PathBuf {
        let dir = self.root.join(format!("{who}-{row}-{}", self.len));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

fn run_size(env: &Env, rows: &mut Vec<Row>, report_big: bool) {
    let (n, len) = (env.n, env.len);
    let label = |row: &str, mode: &str| format!("{row:<12} {:>5} {mode:<7}", fmt_len(len));
    for sync in [true, false] {
        let mode = if sync { "sync" } else { "nosync" };
        // fillseq on fresh stores.
        let d_ours = fill(
            &mut Ours::open(&env.fresh("q", "seq")),
            (0..).map(seq_key),
            n,
            len,
            sync,
        );
        let d_theirs = fill(
            &mut Theirs::open(&env.fresh("f", "seq")),
            (0..).map(seq_key),
            n,
            len,
            sync,
        );
        push(rows, label("fillseq", mode), n, d_ours, d_theirs);

        // fillrandom, then overwrite, on fresh stores.
        let qdir = env.fresh("q", "rand");
        let fdir = env.fresh("f", "rand");
        let io0 = process_write_bytes();
        let mut ours = Ours::open(&qdir);
        let d_ours = fill(&mut ours, (0..).map(key16), n, len, sync);
        let io1 = process_write_bytes();
        let mut theirs = Theirs::open(&fdir);
        let d_theirs = fill(&mut theirs, (0..).map(key16), n, len, sync);
        let io2 = process_write_bytes();
        push(rows, label("fillrandom", mode), n, d_ours, d_theirs);

        let d_ours = fill(&mut ours, picks(n, 7).map(key16), n, len, sync);
        let d_theirs = fill(&mut theirs, picks(n, 7).map(key16), n, len, sync);
        push(rows, label("overwrite", mode), n, d_ours, d_theirs);

        if sync {
            continue;
        }
        // Reads once, on the nosync stores: durability does not change them.
        ours.settle();
        theirs.settle();
        let stats = ours.engine.stats();
        println!(
            "  qastore levels after overwrite ({}): {:?}, compactions {}, write amplification {:.2}",
            fmt_len(len),
            stats.levels.iter().map(|l| l.files).collect::<Vec<_>>(),
            stats.compactions,
            stats.write_amplification
        );
        // Times the same read loop on both stores.
        let both = |f: &dyn Fn(&dyn Store) -> usize| -> (Duration, Duration, usize, usize) {
            let t = Instant::now();
            let a = f(&ours);
            let d_ours = t.elapsed();
            let t = Instant::now();
            let b = f(&theirs);
            (d_ours, t.elapsed(), a, b)
        };
        let reads = (n / 4).max(1000);
        let (d_ours, d_theirs, a, b) = both(&|s| {
            picks(n, 11)
                .take(reads as usize)
                .filter(|&i| s.get(&key16(i)))
                .count()
        });
        assert_eq!(
            (a, b),
            (reads as usize, reads as usize),
            "every key is found"
        );
        push(rows, label("readhit", ""), reads, d_ours, d_theirs);

        let (d_ours, d_theirs, a, b) = both(&|s| {
            picks(n, 13)
                .take(reads as usize)
                .filter(|&i| s.get(&absent_key16(i)))
                .count()
        });
        assert_eq!((a, b), (0, 0), "no absent key is found");
        push(rows, label("readmiss", ""), reads, d_ours, d_theirs);

        let seeks = (n / 50).max(200);
        let (d_ours, d_theirs, a, b) = both(&|s| {
            picks(n, 17)
                .take(seeks as usize)
                .map(|i| s.scan(&key16(i), 100))
                .sum()
        });
        assert_eq!(a, b, "both scans read the same bytes");
        push(rows, label("seek+scan100", ""), seeks, d_ours, d_theirs);

        if report_big {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            let user = n * (16 + len as u64);
            println!(
                "  fillrandom {} x {}: {:.2} GiB of user data",
                n,
                fmt_len(len),
                gib(user)
            );
            if let (Some(a), Some(b), Some(c)) = (io0, io1, io2) {
                println!(
                    "  bytes written per user byte during fillrandom: qastore {:.2} (WAL + tables), fjall {:.2} (journal + tables)",
                    (b - a) as f64 / user as f64,
                    (c - b) as f64 / user as f64
                );
            }
            drop(ours);
            drop(theirs);
            let t = Instant::now();
            let reopened = Ours::open(&qdir);
            let d_ours = t.elapsed();
            let t = Instant::now();
            let theirs = Theirs::open(&fdir);
            let d_theirs = t.elapsed();
            println!(
                "  reopen ({:.2} GiB on disk): qastore {:.3} s (WAL recovery + engine open + replay to index {}), fjall {:.3} s",
                gib(dir_size(&qdir)),
                d_ours.as_secs_f64(),
                reopened.next - 1,
                d_theirs.as_secs_f64()
            );
            assert!(reopened.get(&key16(0)) && theirs.get(&key16(0)));
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let meta = e.metadata();
            match meta {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn fmt_len(len: usize) -> String {
    if len >= 1024 {
        format!("{}KiB", len / 1024)
    } else {
        format!("{len}B")
    }
}

fn push(rows: &mut Vec<Row>, name: String, n: u64, ours: Duration, theirs: Duration) {
    let row = Row {
        name,
        ours: ops_per_sec(n, ours),
        theirs: ops_per_sec(n, theirs),
    };
    println!(
        "  {}  qastore {:>10.0} ops/s  fjall {:>10.0} ops/s  ratio {:>5.2}",
        row.name,
        row.ours,
        row.theirs,
        row.ours / row.theirs
    );
    rows.push(row);
}

fn main() {
    // `cargo bench` passes harness flags such as --bench; this runner takes none.
    let scale: f64 = std::env::var("DB_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let tmp = tempfile::tempdir().unwrap();
    println!("db_bench: QAStore engine + WAL vs fjall 3, batches of {BATCH}, scale {scale}");
    let mut rows = Vec::new();
    for (len, n, big) in [(100usize, 1_000_000u64, false), (1024, 1_000_000, true)] {
        let env = Env {
            root: tmp.path().to_path_buf(),
            n: ((n as f64 * scale) as u64).max(10_000),
            len,
        };
        println!("values of {} bytes, {} keys", len, env.n);
        run_size(&env, &mut rows, big);
        let _ = std::fs::remove_dir_all(tmp.path());
        std::fs::create_dir_all(tmp.path()).unwrap();
    }
    println!();
    println!("| row | value | mode | QAStore ops/s | fjall ops/s | ratio |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let mut parts = r.name.split_whitespace();
        let (row, size, mode) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("-"),
        );
        println!(
            "| {row} | {size} | {mode} | {:.0} | {:.0} | {:.2} |",
            r.ours,
            r.theirs,
            r.ours / r.theirs
        );
    }
}
