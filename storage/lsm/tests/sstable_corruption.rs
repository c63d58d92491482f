//! A flipped byte in a table is an error naming the file, never wrong data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Bound;
use std::path::PathBuf;

use qastore_lsm::vfs::{OsVfs, SimVfs, Vfs};
use qastore_lsm::{Engine, EngineConfig, Error, WriteBatch};

fn options() -> EngineConfig {
    let mut o = EngineConfig::default();
    o.table.block_bytes = 1024;
    o
}

fn fill(e: &Engine) {
    for i in 1..=200u64 {
        let mut b = WriteBatch::new();
        b.put(
            format!("key{i:04}"),
            format!("value-{i}-{}", "z".repeat(50)),
        );
        e.apply(&b, i).unwrap();
    }
    e.flush().unwrap();
}

fn table_in(dir: &std::path::Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .unwrap()
}

#[test]
fn a_flipped_byte_in_a_data_block_fails_reads_of_that_block_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(OsVfs::shared(), dir.path(), options()).unwrap();
    fill(&e);
    drop(e);
    let table = table_in(dir.path());
    let mut bytes = std::fs::read(&table).unwrap();
    bytes[100] ^= 0x04; // inside the first data block (key0001...)
    std::fs::write(&table, &bytes).unwrap();

    let e = Engine::open(OsVfs::shared(), dir.path(), options()).unwrap();
    match e.get(b"key0001") {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!(file, table);
            assert_eq!(offset, 0, "the first block starts at 0");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Keys in other blocks still read.
    assert!(e.get(b"key0200").unwrap().is_some());
    // A scan across the block stops with the error instead of skipping it.
    let results: Vec<_> = e.scan(Bound::Unbounded, Bound::Unbounded).collect();
    assert!(matches!(
        results.last(),
        Some(Err(Error::Corruption { .. }))
    ));
    let err = e.verify().unwrap_err();
    assert!(
        err.to_string().contains(&table.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_damaged_footer_or_index_fails_the_open_naming_the_file() {
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    fill(&e);
    drop(e);
    let name = vfs
        .list("/db".as_ref())
        .unwrap()
        .into_iter()
        .find(|n| n.ends_with(".sst"))
        .unwrap();
    let path = PathBuf::from("/db").join(&name);
    let len = vfs.file_len(&path).unwrap();
    for (at, what) in [(len - 3, "footer"), (len - 100, "meta blocks")] {
        let snapshot = vfs.clone();
        snapshot.corrupt(&path, at, &[0x5a]).unwrap();
        match Engine::open(vfs.shared(), "/db", options()) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, path, "{what}"),
            other => panic!("{what}: expected corruption, got {other:?}"),
        }
    }
}

#[test]
fn a_missing_current_or_manifest_refuses_to_open_instead_of_starting_empty() {
    let vfs = SimVfs::new(1);
    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    fill(&e);
    drop(e);
    let current = PathBuf::from("/db/CURRENT");
    let pointer = vfs.read_all(&current).unwrap();
    let manifest = PathBuf::from("/db").join(std::str::from_utf8(&pointer).unwrap().trim());
    let saved = vfs.read_all(&manifest).unwrap();
    vfs.remove(&manifest).unwrap();
    let err = Engine::open(vfs.shared(), "/db", options()).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { ref file, .. } if *file == current),
        "{err}"
    );
    let f = vfs.create(&manifest).unwrap();
    f.write_at(0, &saved).unwrap();
    vfs.remove(&current).unwrap();
    let err = Engine::open(vfs.shared(), "/db", options()).unwrap_err();
    assert!(err.to_string().contains("CURRENT is missing"), "{err}");
    // Nothing was deleted: putting CURRENT back restores everything.
    let f = vfs.create(&current).unwrap();
    f.write_at(0, &pointer).unwrap();
    let e = Engine::open(vfs.shared(), "/db", options()).unwrap();
    assert_eq!(e.flushed_index(), 200);
    assert!(e.get(b"key0200").unwrap().is_some());
}
