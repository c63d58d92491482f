//! Names of the files in an engine directory.
//!
//! ```text
//! CURRENT            name of the live manifest (replaced by rename)
//! MANIFEST-000007    log of version edits
//! 000012.sst         a table; numbers come from one counter and are never reused
//! *.tmp              a file being written; left over only by a crash, removed at open
//! ```

/// The file naming the live manifest.
pub const CURRENT: &str = "CURRENT";

/// The name of table `number`.
pub fn table_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// The name of manifest `number`.
pub fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

/// What a file in the engine directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A table.
    Table(u64),
    /// A manifest.
    Manifest(u64),
    /// The CURRENT pointer.
    Current,
    /// An unfinished file.
    Temp,
    /// Something the engine does not own (left alone).
    Other,
}

fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Classifies a file name.
pub fn classify(name: &str) -> FileKind {
    if name == CURRENT {
        return FileKind::Current;
    }
    if name.ends_with(".tmp") {
        return FileKind::Temp;
    }
    if let Some(n) = name.strip_suffix(".sst").and_then(number) {
        return FileKind::Table(n);
    }
    if let Some(n) = name.strip_prefix("MANIFEST-").and_then(number) {
        return FileKind::Manifest(n);
    }
    FileKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_classify_back() {
        assert_eq!(classify(&table_name(12)), FileKind::Table(12));
        assert_eq!(classify(&manifest_name(3)), FileKind::Manifest(3));
        assert_eq!(classify("CURRENT"), FileKind::Current);
        assert_eq!(classify("000001.sst.tmp"), FileKind::Temp);
        assert_eq!(classify("LOCK"), FileKind::Other);
        assert_eq!(classify("x.sst"), FileKind::Other);
    }
}
