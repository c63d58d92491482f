//! A damaged manifest frame is corruption naming the file and offset; only a write cut short
//! at the tail (an incomplete last edit, or one followed by nothing but zeros) is a torn edit
//! that recovery may drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use qastore_lsm::vfs::{SimVfs, Vfs};
use qastore_lsm::{Engine, EngineConfig, Error, WriteBatch};

/// Bytes before the first frame of a manifest.
const MANIFEST_HEADER: usize = 16;
/// Bytes of frame header before its payload.
const FRAME_HEADER: usize = 12;

fn dir() -> &'static Path {
    Path::new("/db")
}

fn put(e: &Engine, index: u64) {
    let mut b = WriteBatch::new();
    b.put(format!("key{index:04}"), format!("value-{index}"));
    e.apply(&b, index).unwrap();
}

/// The manifest CURRENT names.
fn manifest(vfs: &SimVfs) -> PathBuf {
    let raw = vfs.read_all(&dir().join("CURRENT")).unwrap();
    let name = String::from_utf8(raw).unwrap();
    dir().join(name.trim_end())
}

/// An engine with flushed data whose manifest holds a single frame: every open writes a fresh
/// manifest holding a snapshot of the file set, so reopening and closing leaves just that.
fn engine_with_a_single_frame_manifest() -> SimVfs {
    let vfs = SimVfs::new(7);
    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    for i in 1..=20 {
        put(&e, i);
    }
    e.flush().unwrap();
    drop(e);
    drop(Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap());
    vfs
}

/// Reads the manifest's frames as (offset, total length).
fn frames(vfs: &SimVfs, path: &Path) -> Vec<(usize, usize)> {
    let buf = vfs.read_all(path).unwrap();
    let mut out = Vec::new();
    let mut pos = MANIFEST_HEADER;
    while pos + FRAME_HEADER <= buf.len() {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, FRAME_HEADER + len));
        pos += FRAME_HEADER + len;
    }
    out
}

fn flip(vfs: &SimVfs, path: &Path, offset: usize) {
    let byte = vfs.read_all(path).unwrap()[offset];
    vfs.corrupt(path, offset, &[byte ^ 0x20]).unwrap();
}

fn expect_corruption_at(err: Error, file: &Path, at: usize) {
    match err {
        Error::Corruption {
            file: f, offset, ..
        } => {
            assert_eq!(f, file, "the error names the manifest");
            assert_eq!(offset, at as u64, "the error names the frame's offset");
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn a_flipped_byte_inside_the_only_frame_refuses_the_open_instead_of_dropping_the_edit() {
    let vfs = engine_with_a_single_frame_manifest();
    let path = manifest(&vfs);
    let f = frames(&vfs, &path);
    assert_eq!(
        f.len(),
        1,
        "a freshly opened manifest holds only its base edit"
    );
    let (offset, len) = f[0];
    flip(
        &vfs,
        &path,
        offset + FRAME_HEADER + (len - FRAME_HEADER) / 2,
    );

    let err = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap_err();
    assert!(err.to_string().contains("base edit"), "{err}");
    expect_corruption_at(err, &path, MANIFEST_HEADER);
}

#[test]
fn a_complete_last_edit_failing_its_checksum_is_corruption_not_a_torn_write() {
    let vfs = SimVfs::new(8);
    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    put(&e, 1);
    e.flush().unwrap();
    put(&e, 2);
    e.flush().unwrap();
    drop(e);
    let path = manifest(&vfs);
    let f = frames(&vfs, &path);
    assert!(f.len() >= 2, "the base edit and the flushes' edits: {f:?}");
    let (offset, len) = *f.last().unwrap();
    assert_eq!(offset + len, vfs.file_len(&path).unwrap());
    flip(&vfs, &path, offset + len - 2);

    let err = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap_err();
    assert!(err.to_string().contains("complete last edit"), "{err}");
    expect_corruption_at(err, &path, offset);
}

#[test]
fn an_incomplete_last_edit_is_torn_and_the_engine_opens_with_the_edits_before_it() {
    let vfs = SimVfs::new(9);
    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    put(&e, 1);
    e.flush().unwrap();
    drop(e);
    let path = manifest(&vfs);
    let len = vfs.file_len(&path).unwrap();
    // An edit whose write was cut short: its header and the first bytes of its payload.
    let (offset, _) = *frames(&vfs, &path).last().unwrap();
    let bytes = vfs.read_all(&path).unwrap();
    vfs.corrupt(&path, len, &bytes[offset..offset + FRAME_HEADER + 3])
        .unwrap();

    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    assert_eq!(e.flushed_index(), 1);
    assert_eq!(e.get(b"key0001").unwrap().as_deref(), Some(&b"value-1"[..]));
}

#[test]
fn a_bad_last_edit_followed_only_by_zeros_is_torn() {
    let vfs = SimVfs::new(10);
    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    put(&e, 1);
    e.flush().unwrap();
    put(&e, 2);
    e.flush().unwrap();
    drop(e);
    let path = manifest(&vfs);
    let (offset, len) = *frames(&vfs, &path).last().unwrap();
    // The last edit's write landed only in part; the file was extended past it with zeros.
    flip(&vfs, &path, offset + len - 1);
    vfs.corrupt(&path, offset + len, &[0u8; 64]).unwrap();

    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    assert_eq!(e.flushed_index(), 1, "the torn second flush is dropped");
    assert!(e.get(b"key0001").unwrap().is_some());
}

#[test]
fn a_flipped_byte_in_an_earlier_edit_is_corruption() {
    let vfs = SimVfs::new(11);
    let e = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap();
    for i in 1..=3 {
        put(&e, i);
        e.flush().unwrap();
    }
    drop(e);
    let path = manifest(&vfs);
    let f = frames(&vfs, &path);
    let (offset, len) = f[1];
    flip(&vfs, &path, offset + len - 1);

    let err = Engine::open(vfs.shared(), dir(), EngineConfig::default()).unwrap_err();
    expect_corruption_at(err, &path, offset);
}
