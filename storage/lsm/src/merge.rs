//! Merging sorted sources into one sorted stream, and the user-visible view of it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use bytes::Bytes;

use crate::entry::Entry;
use crate::error::Result;
use crate::ikey::ValueKind;

/// A sorted source of key versions.
pub type Source = Box<dyn Iterator<Item = Result<Entry>> + Send>;

struct Head {
    entry: Entry,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    // BinaryHeap is a max-heap; reverse so the smallest internal key comes out first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .entry
            .cmp_key(&self.entry)
            .then_with(|| other.source.cmp(&self.source))
    }
}

/// Merges sources that are each in internal-key order into one stream in that order.
pub struct MergeIter {
    sources: Vec<Source>,
    heap: BinaryHeap<Head>,
    primed: bool,
    failed: bool,
}

impl MergeIter {
    /// Merges `sources`.
    pub fn new(sources: Vec<Source>) -> Self {
        MergeIter {
            heap: BinaryHeap::with_capacity(sources.len()),
            sources,
            primed: false,
            failed: false,
        }
    }

    fn pull(&mut self, source: usize) -> Result<()> {
        if let Some(next) = self.sources[source].next() {
            self.heap.push(Head {
                entry: next?,
                source,
            });
        }
        Ok(())
    }
}

impl Iterator for MergeIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        if !self.primed {
            self.primed = true;
            for i in 0..self.sources.len() {
                if let Err(e) = self.pull(i) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let head = self.heap.pop()?;
        if let Err(e) = self.pull(head.source) {
            self.failed = true;
            return Some(Err(e));
        }
        Some(Ok(head.entry))
    }
}

/// What a reader sees at a snapshot: for each user key, its newest version at or below the
/// snapshot, unless that version is a delete.
pub struct VisibleIter {
    inner: MergeIter,
    snapshot: u64,
    last_key: Option<Bytes>,
}

impl VisibleIter {
    /// Reads `inner` as of `snapshot`.
    pub fn new(inner: MergeIter, snapshot: u64) -> Self {
        VisibleIter {
            inner,
            snapshot,
            last_key: None,
        }
    }
}

impl Iterator for VisibleIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let e = match self.inner.next()? {
                Ok(e) => e,
                Err(err) => return Some(Err(err)),
            };
            if e.seq > self.snapshot || self.last_key.as_ref() == Some(&e.key) {
                continue;
            }
            self.last_key = Some(e.key.clone());
            if e.kind == ValueKind::Put {
                return Some(Ok((e.key, e.value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(items: &[(&'static str, u64, bool)]) -> Source {
        let v: Vec<Result<Entry>> = items
            .iter()
            .map(|&(k, seq, put)| {
                Ok(Entry {
                    key: Bytes::from_static(k.as_bytes()),
                    seq,
                    kind: if put {
                        ValueKind::Put
                    } else {
                        ValueKind::Delete
                    },
                    value: Bytes::from(format!("{k}@{seq}")),
                })
            })
            .collect();
        Box::new(v.into_iter())
    }

    #[test]
    fn newest_visible_version_wins_and_deletes_hide_keys() {
        let a = src(&[("a", 5, true), ("c", 9, false), ("d", 1, true)]);
        let b = src(&[("a", 3, true), ("b", 7, true), ("c", 2, true)]);
        let c = src(&[("a", 12, true), ("d", 11, false)]);
        let visible: Vec<_> = VisibleIter::new(MergeIter::new(vec![a, b, c]), 10)
            .map(|r| r.unwrap())
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            visible,
            vec![
                ("a".into(), "a@5".into()),
                ("b".into(), "b@7".into()),
                ("d".into(), "d@1".into()),
            ]
        );
    }
}
