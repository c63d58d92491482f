//! Extra directories: files an engine's owner keeps beside the tables and wants carried by
//! checkpoints (the engine copies them without knowing what they hold).
//!
//! A checkpoint declares its extra directories in its metadata, and a file of it that is not
//! one of the engine's own must lie under one of them. Names come from the network when a
//! checkpoint is received, so every segment is checked: no empty, `.` or `..` segment, no
//! backslash, no control character, and no directory named like a file the engine owns.

use crate::error::{InvalidArgument, Result};
use crate::filenames::{classify, FileKind};
use crate::vfs::LOCK_FILE;

use super::meta::CHECKPOINT_FILE;

/// Whether `segment` is a plain path segment: not empty, `.` or `..`, and free of slashes,
/// backslashes and control characters.
fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && !segment.contains(['/', '\\'])
        && !segment.chars().any(char::is_control)
}

/// Whether `dir` can be an extra directory: plain segments joined by `/`, the first of which
/// is not a name the engine uses for its own files.
pub fn is_extra_dir(dir: &str) -> bool {
    let Some(first) = dir.split('/').next() else {
        return false;
    };
    dir.split('/').all(is_plain_segment)
        && matches!(classify(first), FileKind::Other)
        && first != LOCK_FILE
        && first != CHECKPOINT_FILE
}

/// Checks a list of extra directories: each valid and listed once.
pub fn check_extra_dirs<S: AsRef<str>>(dirs: &[S]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        let dir = dir.as_ref();
        if !is_extra_dir(dir) || !seen.insert(dir) {
            return Err(InvalidArgument::BadExtraDir { name: dir.into() }.into());
        }
    }
    Ok(())
}

/// Whether `name` is a file path under one of `dirs`: the directory, then at least one more
/// plain segment.
pub fn is_extra_file<S: AsRef<str>>(name: &str, dirs: &[S]) -> bool {
    dirs.iter().any(|dir| {
        name.strip_prefix(dir.as_ref())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| rest.split('/').all(is_plain_segment))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_directories_are_accepted() {
        for good in ["olap", "extra/data", "a.b"] {
            assert!(is_extra_dir(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/../b",
            "a//b",
            "/abs",
            "a\\b",
            "x\u{7}",
            "CURRENT",
            "LOCK",
            "CHECKPOINT",
            "000001.sst",
            "MANIFEST-000002",
            "x.tmp",
        ] {
            assert!(!is_extra_dir(bad), "{bad:?}");
        }
        assert!(check_extra_dirs(&["olap", "olap"]).is_err());
        assert!(check_extra_dirs(&["olap", "more"]).is_ok());
    }

    #[test]
    fn files_must_lie_under_a_declared_directory() {
        let dirs = ["olap"];
        assert!(is_extra_file("olap/ticks/20241202/part.parquet", &dirs));
        assert!(is_extra_file("olap/x", &dirs));
        for bad in [
            "olap",
            "olap/",
            "olapx/a",
            "other/a",
            "olap/../CURRENT",
            "olap/./a",
            "olap/a\\b",
            "olap/a\nb",
            "olap//a",
        ] {
            assert!(!is_extra_file(bad, &dirs), "{bad:?}");
        }
    }
}
