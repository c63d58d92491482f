//! SIGKILL crash loop: a child process appends to a WAL and applies to an engine (whose tiny
//! levels keep compactions running), flushing and taking checkpoints now and then, until it is
//! killed at a random moment. The parent reopens everything and checks that all the child
//! reported durable is there, that the engine holds exactly the batches up to its flushed
//! index, that no unfinished checkpoint survives and every kept one verifies, and that the
//! newest opens to exactly its log index. Then the next round resumes from the recovered state.
//!
//! A SIGKILL leaves the page cache intact, so this checks recovery from every in-between state
//! of the files (half-written frames, tables never renamed, manifests mid-roll), not power loss;
//! the power-cut tests cover that.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use qastore_lsm::checkpoint::{verify, CheckpointStore, EngineHome};
use qastore_lsm::vfs::OsVfs;
use qastore_lsm::wal::{Wal, WalConfig, WalEntry};
use qastore_lsm::{Engine, EngineConfig, WriteBatch};
use rand::{Rng, SeedableRng};
use support::{contents, Op, State};

const CHILD_ENV: &str = "QASTORE_CRASH_LOOP_DIR";
const ROUNDS: usize = 24;

fn wal_opts() -> WalConfig {
    WalConfig {
        segment_bytes: 64 << 10,
        ..WalConfig::default()
    }
}

fn engine_opts() -> EngineConfig {
    let mut o = EngineConfig {
        memtable_bytes: 32 << 10,
        max_manifest_bytes: 8 << 10,
        l0_compaction_trigger: 2,
        level1_bytes: 96 << 10,
        level_multiplier: 4,
        target_file_bytes: 32 << 10,
        ..EngineConfig::default()
    };
    o.table.block_bytes = 1024;
    o
}

fn ops(i: u64) -> Vec<Op> {
    let mut v = vec![(
        format!("k{:05}", (i * 7919) % 20011),
        Some(format!("{i}:{}", "p".repeat((i % 64) as usize))),
    )];
    if i.is_multiple_of(3) {
        v.push((format!("k{:05}", (i * 13) % 20011), None));
    }
    v
}

fn payload(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

fn batch(i: u64) -> WriteBatch {
    support::write_batch(&ops(i))
}

fn model(upto: u64) -> State {
    support::model((1..=upto).map(ops))
}

/// Reopens both, brings the engine up to the WAL's end the way Raft would, and returns them.
fn recover(dir: &Path) -> (Wal, Engine) {
    let wal = Wal::open(OsVfs::shared(), dir.join("wal"), wal_opts()).unwrap();
    let engine = Engine::open(OsVfs::shared(), dir.join("db"), engine_opts()).unwrap();
    let last = wal.last_index().unwrap_or(0);
    let flushed = engine.flushed_index();
    assert!(
        flushed <= last,
        "engine flushed {flushed} beyond the log's end {last}"
    );
    if last > flushed {
        for e in wal.read(flushed + 1..last + 1).unwrap() {
            assert_eq!(e.payload, payload(e.index));
            engine.apply(&batch(e.index), e.index).unwrap();
        }
    }
    (wal, engine)
}

fn checkpoints(dir: &Path) -> CheckpointStore {
    CheckpointStore::open(OsVfs::shared(), dir.join("checkpoints"), 2).unwrap()
}

/// The child's body: runs until killed.
fn child(dir: &Path) {
    let (wal, engine) = recover(dir);
    let store = checkpoints(dir);
    let mut i = wal.last_index().unwrap_or(0);
    let mut applied = engine.applied_index().max(i);
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    loop {
        i += 1;
        let o = out.clone();
        let index = i;
        wal.append(&[WalEntry::new(i, 1, payload(i))], move |r| {
            if r.is_ok() {
                use std::io::Write;
                let mut o = o.lock().unwrap();
                let _ = writeln!(o, "durable {index}");
                let _ = o.flush();
            }
        })
        .unwrap();
        // Like Raft's state machine, the engine only gets entries the log holds durably: an
        // entry appended but not yet synced can still vanish (a segment not yet renamed into
        // place), and the engine's background flushes must never get ahead of the log.
        while applied < wal.durable_index() {
            applied += 1;
            engine.apply(&batch(applied), applied).unwrap();
            if applied.is_multiple_of(97) {
                engine.flush().unwrap();
                use std::io::Write;
                let mut o = out.lock().unwrap();
                let _ = writeln!(o, "flushed {}", engine.flushed_index());
                let _ = o.flush();
            }
            if applied.is_multiple_of(1500) {
                store
                    .create(&engine, Bytes::from(applied.to_string()))
                    .unwrap();
            }
        }
    }
}

#[test]
fn sigkill_loop_child() {
    // Runs only as the child of the test below.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_reported_durable() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::env::var("QASTORE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    println!("crash loop seed {seed} (set QASTORE_CRASH_SEED to replay)");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_loop_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut durable, mut flushed) = (0u64, 0u64);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.split_whitespace();
                match (
                    parts.next(),
                    parts.next().and_then(|n| n.parse::<u64>().ok()),
                ) {
                    (Some("durable"), Some(n)) => durable = durable.max(n),
                    (Some("flushed"), Some(n)) => flushed = flushed.max(n),
                    _ => {}
                }
            }
            (durable, flushed)
        });
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(rng.random_range(30..250)));
        // `Child::kill` sends SIGKILL: no chance to flush or fsync anything more.
        let _ = child.kill();
        let _ = child.wait();
        let (durable, flushed) = reader.join().unwrap();

        let (wal, engine) = recover(dir.path());
        let last = wal.last_index().unwrap_or(0);
        assert!(
            last >= durable,
            "round {round}: reported {durable} durable, log ends at {last}"
        );
        assert!(
            engine.flushed_index() >= flushed,
            "round {round}: flush regressed"
        );
        assert_eq!(
            contents(&engine),
            model(last),
            "round {round}: engine differs from the log"
        );
        engine.verify().unwrap();

        let store = checkpoints(dir.path());
        let kept = store.list().unwrap();
        assert!(kept.len() <= 2);
        for info in &kept {
            verify(&OsVfs, &info.dir)
                .unwrap_or_else(|e| panic!("round {round}: checkpoint {}: {e}", info.name()));
        }
        if let Some(newest) = kept.last() {
            let home_dir = tempfile::tempdir().unwrap();
            let mut home = EngineHome::open(OsVfs::shared(), home_dir.path()).unwrap();
            let copy = Engine::open(
                OsVfs::shared(),
                home.switch_to(newest).unwrap(),
                engine_opts(),
            )
            .unwrap();
            assert_eq!(copy.flushed_index(), newest.meta.log_index);
            assert_eq!(
                contents(&copy),
                model(newest.meta.log_index),
                "round {round}: checkpoint"
            );
        }
        let stats = engine.stats();
        println!(
            "round {round}: ran {:?}, log {last}, durable {durable}, flushed {}, tables {:?}, checkpoints {}",
            started.elapsed(),
            engine.flushed_index(),
            stats.levels.iter().map(|l| l.files).collect::<Vec<_>>(),
            kept.len()
        );
    }
}
