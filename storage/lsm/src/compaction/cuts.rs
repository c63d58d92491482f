//! Where a stream of keys written in ascending order is cut into tables.
//!
//! Besides the size limit (the caller's), a table ends:
//!
//! * before a key whose partition differs from the table's last key: with a partition prefix
//!   of `n` bytes, keys that differ in their first `n` bytes never share a table;
//! * before a key that would make the table's key range cover a fence: a table of the output
//!   level that the compaction leaves where it is (or moves there whole). Tables of a level
//!   above 0 must not overlap, and the keys merged never fall inside a fence's range, only
//!   around it.

/// Whether `a` and `b` belong to the same partition under a prefix of `prefix` bytes (0: one
/// partition for all keys).
pub fn same_partition(a: &[u8], b: &[u8], prefix: usize) -> bool {
    prefix == 0 || a[..a.len().min(prefix)] == b[..b.len().min(prefix)]
}

/// Tracks the table being written and says when the next key must start another.
#[derive(Debug)]
pub struct Cuts {
    prefix: usize,
    /// Smallest user keys of the fences, ascending.
    fences: Vec<Vec<u8>>,
    next_fence: usize,
    /// The last user key added to the current table, if it holds any.
    last: Option<Vec<u8>>,
}

impl Cuts {
    /// Cuts by partitions of `prefix` bytes and around tables whose smallest user keys are
    /// `fences` (any order).
    pub fn new(prefix: usize, mut fences: Vec<Vec<u8>>) -> Cuts {
        fences.sort_unstable();
        Cuts {
            prefix,
            fences,
            next_fence: 0,
            last: None,
        }
    }

    /// Called before `key` is added to the current table (keys ascending): whether the current
    /// table must be finished first. `key` is then taken as the current table's last key.
    pub fn before(&mut self, key: &[u8]) -> bool {
        let cut = match &self.last {
            None => false,
            Some(last) => {
                while self
                    .fences
                    .get(self.next_fence)
                    .is_some_and(|f| f.as_slice() <= last.as_slice())
                {
                    self.next_fence += 1;
                }
                let fenced = self
                    .fences
                    .get(self.next_fence)
                    .is_some_and(|f| f.as_slice() <= key);
                fenced || !same_partition(last, key, self.prefix)
            }
        };
        let last = self.last.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(key);
        cut
    }

    /// The current table was finished (for its size): the next key starts a new one.
    pub fn finished(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_points(cuts: &mut Cuts, keys: &[&str]) -> Vec<String> {
        keys.iter()
            .filter(|k| cuts.before(k.as_bytes()))
            .map(|k| k.to_string())
            .collect()
    }

    #[test]
    fn keys_of_another_partition_start_a_table() {
        let mut cuts = Cuts::new(1, Vec::new());
        assert_eq!(
            cut_points(&mut cuts, &["a1", "a2", "c1", "e1", "e2", "e3"]),
            ["c1", "e1"]
        );
        assert!(same_partition(b"", b"", 1));
        assert!(!same_partition(b"", b"a", 1));
        assert!(same_partition(b"ab", b"ac", 1));
        assert!(!same_partition(b"ab", b"ac", 2));
        assert!(same_partition(b"x", b"y", 0));
    }

    #[test]
    fn a_table_never_spans_a_fence() {
        // Fences at "c5" and "m": keys around them, none inside them.
        let mut cuts = Cuts::new(0, vec![b"m".to_vec(), b"c5".to_vec()]);
        assert_eq!(
            cut_points(&mut cuts, &["a", "c1", "c9", "d", "l", "n", "z"]),
            ["c9", "n"]
        );
    }

    #[test]
    fn a_table_finished_for_its_size_leaves_no_last_key() {
        let mut cuts = Cuts::new(1, vec![b"b".to_vec()]);
        assert!(!cuts.before(b"a1"));
        cuts.finished();
        assert!(!cuts.before(b"c"), "the new table starts at c");
        assert!(!cuts.before(b"c2"));
    }
}
