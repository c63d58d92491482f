//! Checkpoints: taken under concurrent writes they open to exactly the state at their log
//! index; they verify, stream, install and switch; the store keeps two and honours leases;
//! damage is reported naming the file; power cuts never leave a half checkpoint behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use qastore_lsm::checkpoint::{
    verify, CheckpointInfo, CheckpointLease, CheckpointMeta, CheckpointStore, EngineHome,
};
use qastore_lsm::vfs::{OsVfs, SimVfs, Vfs, VfsRef};
use qastore_lsm::{Engine, EngineConfig, Error, InvalidArgument};
use support::{contents, Op, State};

fn options() -> EngineConfig {
    let mut o = EngineConfig {
        memtable_bytes: 4 << 10,
        l0_compaction_trigger: 2,
        level1_bytes: 16 << 10,
        level_multiplier: 4,
        target_file_bytes: 8 << 10,
        ..EngineConfig::default()
    };
    o.table.block_bytes = 512;
    o
}

fn ops(i: u64) -> Vec<Op> {
    let mut v = vec![(
        format!("k{:04}", i % 300),
        Some(format!("v{i}{}", "x".repeat((i % 50) as usize))),
    )];
    if i.is_multiple_of(5) {
        v.push((format!("k{:04}", (i * 7) % 300), None));
    }
    v
}

fn model(upto: u64) -> State {
    support::model((1..=upto).map(ops))
}

fn fill(e: &Engine, from: u64, to: u64) {
    for i in from..=to {
        e.apply(&support::write_batch(&ops(i)), i).unwrap();
    }
}

/// Opens a checkpoint the way a node installs one: through an engine home of its own.
fn open_copy(vfs: &VfsRef, home_root: &Path, info: &CheckpointInfo) -> Engine {
    let mut home = EngineHome::open(vfs.clone(), home_root).unwrap();
    let dir = home.switch_to(info).unwrap();
    Engine::open(vfs.clone(), dir, options()).unwrap()
}

#[test]
fn a_checkpoint_taken_under_concurrent_writes_opens_to_exactly_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let vfs = OsVfs::shared();
    let engine = Arc::new(Engine::open(vfs.clone(), tmp.path().join("db"), options()).unwrap());
    let store = CheckpointStore::open(vfs.clone(), tmp.path().join("checkpoints"), 2).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (engine, stop, written) = (engine.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                i += 1;
                engine.apply(&support::write_batch(&ops(i)), i).unwrap();
                written.store(i, Ordering::Relaxed);
            }
        })
    };
    let mut taken = Vec::new();
    for round in 0..6 {
        while written.load(Ordering::Relaxed) < 500 * (round + 1) {
            std::thread::yield_now();
        }
        if round % 2 == 0 {
            engine.flush().unwrap();
        }
        let info = store
            .create(&engine, Bytes::from(format!("round {round}")))
            .unwrap();
        taken.push(info);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(engine.stats().compactions > 0, "compactions ran meanwhile");

    // The store kept the newest two; each opens to exactly the state at its index.
    let kept = store.list().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept, taken[4..].to_vec());
    for (n, info) in kept.iter().enumerate() {
        assert!(info.meta.log_index > 0);
        assert_eq!(info.meta.blob, Bytes::from(format!("round {}", n + 4)));
        verify(vfs.as_ref(), &info.dir).unwrap();
        let copy = open_copy(&vfs, &tmp.path().join(format!("home{n}")), info);
        assert_eq!(copy.flushed_index(), info.meta.log_index);
        assert_eq!(contents(&copy), model(info.meta.log_index));
    }
}

#[test]
fn the_store_keeps_two_and_a_lease_holds_an_older_one() {
    let vfs = SimVfs::new(1);
    let engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
    let store = CheckpointStore::open(vfs.shared(), "/ckpt", 2).unwrap();
    let mut index = 0;
    let mut next = |store: &CheckpointStore| {
        fill(&engine, index + 1, index + 50);
        index += 50;
        engine.flush().unwrap();
        store.create(&engine, Bytes::new()).unwrap()
    };
    for _ in 0..4 {
        next(&store);
    }
    let names: Vec<_> = store
        .list()
        .unwrap()
        .iter()
        .map(|c| c.meta.log_index)
        .collect();
    assert_eq!(names, vec![150, 200]);
    let lease = store.lease(&store.list().unwrap()[0].name()).unwrap();
    next(&store);
    next(&store);
    let held: Vec<_> = store
        .list()
        .unwrap()
        .iter()
        .map(|c| c.meta.log_index)
        .collect();
    assert_eq!(held, vec![150, 250, 300], "the leased one stays while read");
    assert_eq!(lease.read_chunk("CURRENT", 0, 100).unwrap().len() as u64, {
        lease
            .info()
            .meta
            .files
            .iter()
            .find(|f| f.name == "CURRENT")
            .unwrap()
            .size
    });
    drop(lease);
    let after: Vec<_> = store
        .list()
        .unwrap()
        .iter()
        .map(|c| c.meta.log_index)
        .collect();
    assert_eq!(after, vec![250, 300]);
    assert!(matches!(
        store.lease("ckpt-nope"),
        Err(Error::InvalidArgument(
            InvalidArgument::UnknownCheckpoint { .. }
        ))
    ));
}

/// Streams `lease` into `store` chunk by chunk, letting `tamper` change chunks on the way.
fn stream(
    lease: &CheckpointLease,
    store: &CheckpointStore,
    tamper: impl Fn(&str, u64, &mut Vec<u8>),
) -> Result<CheckpointInfo, Error> {
    let mut installer = store.begin_install(lease.info().meta.clone())?;
    for f in &lease.info().meta.files {
        let mut offset = 0;
        while offset < f.size {
            let mut chunk = lease.read_chunk(&f.name, offset, 777)?.to_vec();
            tamper(&f.name, offset, &mut chunk);
            installer.write(&f.name, offset, &chunk)?;
            offset += chunk.len() as u64;
        }
    }
    installer.finish()
}

#[test]
fn a_checkpoint_streams_into_another_store_installs_and_switches() {
    let vfs = SimVfs::new(1);
    let engine = Engine::open(vfs.shared(), "/a/db", options()).unwrap();
    fill(&engine, 1, 700);
    engine.flush().unwrap();
    let source = CheckpointStore::open(vfs.shared(), "/a/ckpt", 2).unwrap();
    let info = source.create(&engine, Bytes::from_static(b"m")).unwrap();
    let lease = source.lease(&info.name()).unwrap();

    let target = CheckpointStore::open(vfs.shared(), "/b/ckpt", 2).unwrap();
    let installed = stream(&lease, &target, |_, _, _| {}).unwrap();
    assert_eq!(installed.meta, info.meta);
    assert_eq!(target.list().unwrap(), vec![installed.clone()]);
    verify(&vfs, &installed.dir).unwrap();

    // The receiving node switches its engine to the installed checkpoint.
    let mut home = EngineHome::open(vfs.shared(), "/b/engine").unwrap();
    let old = Engine::open(vfs.shared(), home.active_dir(), options()).unwrap();
    fill(&old, 1, 10);
    assert!(
        home.switch_to(&installed).is_err(),
        "the old engine must be closed first"
    );
    drop(old);
    let dir = home.switch_to(&installed).unwrap();
    let e = Engine::open(vfs.shared(), &dir, options()).unwrap();
    assert_eq!(e.flushed_index(), 700);
    assert_eq!(contents(&e), model(700));
    fill(&e, 701, 720);
    drop(e);
    let home = EngineHome::open(vfs.shared(), "/b/engine").unwrap();
    assert_eq!(home.active_dir(), dir);
    // The engine's own writes never touch the checkpoint it came from.
    verify(&vfs, &installed.dir).unwrap();
}

#[test]
fn bad_transfers_are_refused_and_leave_nothing_behind() {
    let vfs = SimVfs::new(1);
    let engine = Engine::open(vfs.shared(), "/a/db", options()).unwrap();
    fill(&engine, 1, 300);
    engine.flush().unwrap();
    let source = CheckpointStore::open(vfs.shared(), "/a/ckpt", 2).unwrap();
    let info = source.create(&engine, Bytes::new()).unwrap();
    let lease = source.lease(&info.name()).unwrap();
    let target = CheckpointStore::open(vfs.shared(), "/b/ckpt", 2).unwrap();
    let table = info
        .meta
        .files
        .iter()
        .find(|f| f.name.ends_with(".sst"))
        .unwrap()
        .name
        .clone();

    // A flipped byte in transit.
    let err = stream(&lease, &target, |name, offset, chunk| {
        if name == table && offset == 0 {
            chunk[10] ^= 1;
        }
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::Corruption { ref file, .. } if file.ends_with(&table)),
        "{err}"
    );

    // Names from the peer that could escape the directory or are not checkpoint files.
    for name in ["../evil.sst", "CHECKPOINT", "x/000001.sst", "notes.txt"] {
        let mut meta: CheckpointMeta = info.meta.clone();
        meta.files[0].name = name.to_string();
        assert!(
            matches!(
                target.begin_install(meta),
                Err(Error::InvalidArgument(
                    InvalidArgument::UnknownCheckpointFile { .. }
                ))
            ),
            "{name}"
        );
    }

    // Chunks outside the listed files, and a file never sent.
    let mut inst = target.begin_install(info.meta.clone()).unwrap();
    assert!(matches!(
        inst.write(&table, info.meta.files[0].size + 5, b"x"),
        Err(Error::InvalidArgument(
            InvalidArgument::ChunkOutOfRange { .. }
        ))
    ));
    assert!(inst.write("000999.sst", 0, b"x").is_err());
    let err = inst.finish().unwrap_err();
    assert!(err.to_string().contains("never received"), "{err}");

    assert!(target.list().unwrap().is_empty());
    assert!(
        vfs.list(Path::new("/b/ckpt")).unwrap().is_empty(),
        "nothing left behind"
    );
}

#[test]
fn extra_directories_travel_and_only_declared_ones_install() {
    let vfs = SimVfs::new(1);
    let engine = Engine::open(vfs.shared(), "/a/db", options()).unwrap();
    fill(&engine, 1, 100);
    engine.flush().unwrap();
    for (path, body) in [
        ("/a/db/extra/day=1/part.bin", &b"one"[..]),
        ("/a/db/extra/day=2/part.bin", b"two"),
        ("/a/db/extra/day=2/part.bin.tmp", b"being written"),
        ("/a/db/other/left.bin", b"not declared"),
    ] {
        let path = Path::new(path);
        vfs.create_dir_all(path.parent().unwrap()).unwrap();
        qastore_lsm::vfs::write_atomic(&vfs, path, body).unwrap();
    }
    let source = CheckpointStore::open(vfs.shared(), "/a/ckpt", 2).unwrap();
    assert!(matches!(
        source.create_with(&engine, &["../up"], |_| Ok(Bytes::new())),
        Err(Error::InvalidArgument(InvalidArgument::BadExtraDir { .. }))
    ));
    let info = source
        .create_with(&engine, &["extra", "absent"], |_| Ok(Bytes::new()))
        .unwrap();
    assert_eq!(info.meta.extra_dirs, ["extra", "absent"]);
    let extra: Vec<&str> = info
        .meta
        .files
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| n.contains('/'))
        .collect();
    assert_eq!(extra, ["extra/day=1/part.bin", "extra/day=2/part.bin"]);
    verify(&vfs, &info.dir).unwrap();

    let lease = source.lease(&info.name()).unwrap();
    let target = CheckpointStore::open(vfs.shared(), "/b/ckpt", 2).unwrap();
    let installed = stream(&lease, &target, |_, _, _| {}).unwrap();
    assert_eq!(installed.meta, info.meta);
    assert_eq!(
        vfs.read_all(&installed.dir.join("extra/day=2/part.bin"))
            .unwrap(),
        b"two"
    );

    // Files outside the declared directories, or unsafe names within them, are refused.
    for (dirs, name) in [
        (vec![], "extra/day=1/part.bin"),
        (vec!["other"], "extra/day=1/part.bin"),
        (vec!["extra"], "extra/../CURRENT"),
        (vec!["extra"], "extra/day=1/\u{1b}x"),
    ] {
        let mut meta: CheckpointMeta = info.meta.clone();
        meta.extra_dirs = dirs.iter().map(|d| d.to_string()).collect();
        let f = meta
            .files
            .iter_mut()
            .find(|f| f.name.contains('/'))
            .unwrap();
        f.name = name.to_string();
        assert!(
            matches!(
                target.begin_install(meta),
                Err(Error::InvalidArgument(
                    InvalidArgument::UnknownCheckpointFile { .. }
                ))
            ),
            "{name} under {dirs:?}"
        );
    }
    let mut meta: CheckpointMeta = info.meta.clone();
    meta.extra_dirs = vec!["..".into()];
    assert!(matches!(
        target.begin_install(meta),
        Err(Error::InvalidArgument(InvalidArgument::BadExtraDir { .. }))
    ));
}

#[test]
fn damage_to_a_checkpoint_is_reported_naming_the_file() {
    let vfs = SimVfs::new(1);
    let engine = Engine::open(vfs.shared(), "/db", options()).unwrap();
    fill(&engine, 1, 400);
    engine.flush().unwrap();
    let store = CheckpointStore::open(vfs.shared(), "/ckpt", 2).unwrap();
    let info = store.create(&engine, Bytes::new()).unwrap();
    let table = info
        .meta
        .files
        .iter()
        .find(|f| f.name.ends_with(".sst"))
        .unwrap();
    let path = info.dir.join(&table.name);
    let original = vfs.read_all(&path).unwrap();
    vfs.corrupt(&path, 40, &[original[40] ^ 0x80]).unwrap();
    match verify(&vfs, &info.dir) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
        other => panic!("expected corruption, got {other:?}"),
    }
    vfs.corrupt(&path, 40, &[original[40]]).unwrap();
    verify(&vfs, &info.dir).unwrap();
    vfs.remove(&path).unwrap();
    let err = verify(&vfs, &info.dir).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Power cut at a random point while taking a checkpoint, installing one, or switching the
    /// engine to it: afterwards every checkpoint the store lists verifies, and the home's
    /// active directory opens to a complete state (old or new).
    #[test]
    fn power_cuts_never_leave_half_a_checkpoint(
        crash_at in 1u64..120,
        stage in 0u8..3,
        mode in support::power_cut_mode(),
        seed: u64,
    ) {
        let vfs = SimVfs::new(seed);
        let engine = Engine::open(vfs.shared(), "/a/db", options()).unwrap();
        fill(&engine, 1, 300);
        engine.flush().unwrap();
        let source = CheckpointStore::open(vfs.shared(), "/a/ckpt", 2).unwrap();
        let first = source.create(&engine, Bytes::new()).unwrap();
        fill(&engine, 301, 400);
        engine.flush().unwrap();
        // The crash point counts every file operation: background compaction must not race
        // to it before the operation under test starts.
        engine.wait_for_compactions().unwrap();
        let target = CheckpointStore::open(vfs.shared(), "/b/ckpt", 2).unwrap();
        let mut home = EngineHome::open(vfs.shared(), "/b/engine").unwrap();
        let installed = if stage >= 2 {
            let lease = source.lease(&first.name()).unwrap();
            Some(stream(&lease, &target, |_, _, _| {}).unwrap())
        } else {
            None
        };

        vfs.crash_after_ops(crash_at, mode);
        let _ = match stage {
            0 => source.create(&engine, Bytes::new()).map(|_| ()),
            1 => {
                let lease = source.lease(&first.name()).unwrap();
                stream(&lease, &target, |_, _, _| {}).map(|_| ())
            }
            _ => home.switch_to(installed.as_ref().unwrap()).map(|_| ()),
        };
        if !vfs.is_halted() {
            vfs.power_cut(mode);
        }
        drop((engine, source, target, home));
        vfs.restart();

        for root in ["/a/ckpt", "/b/ckpt"] {
            let store = CheckpointStore::open(vfs.shared(), root, 2).unwrap();
            for info in store.list().unwrap() {
                verify(&vfs, &info.dir).unwrap();
            }
            for name in vfs.list(Path::new(root)).unwrap() {
                prop_assert!(store.list().unwrap().iter().any(|c| c.name() == name), "unfinished {name} left");
            }
        }
        let home = EngineHome::open(vfs.shared(), "/b/engine").unwrap();
        let e = Engine::open(vfs.shared(), home.active_dir(), options()).unwrap();
        let flushed = e.flushed_index();
        prop_assert!(flushed == 0 || flushed == 300, "{flushed}");
        prop_assert_eq!(contents(&e), model(flushed));
    }
}

#[test]
fn a_checkpoint_directory_opens_as_an_engine_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let vfs = OsVfs::shared();
    let engine = Engine::open(vfs.clone(), tmp.path().join("db"), options()).unwrap();
    fill(&engine, 1, 500);
    engine.flush().unwrap();
    let info = engine
        .checkpoint(tmp.path().join("backup"), Bytes::from_static(b"b"))
        .unwrap();
    fill(&engine, 501, 600);
    drop(engine);
    let restored = Engine::open(vfs.clone(), &info.dir, options()).unwrap();
    assert_eq!(restored.flushed_index(), 500);
    assert_eq!(contents(&restored), model(500));
    // A checkpoint directory that already exists is refused rather than overwritten.
    let again = Engine::open(vfs, tmp.path().join("db"), options()).unwrap();
    assert!(again.checkpoint(&info.dir, Bytes::new()).is_err());
}
