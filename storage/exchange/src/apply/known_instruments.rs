//! The instruments a node's engine is known to hold in its catalog, kept in memory so that a
//! tick or trade of a known instrument does not look its catalog key up in the engine.
//!
//! Catalog keys are only ever added (nothing deletes them), and a state that replaces the
//! engine (a snapshot or a repair) is a later state of the same log, so a key once held stays
//! held: remembering it can only skip a lookup whose answer is known. What a batch stages is
//! remembered only once the batch is in the engine ([`KnownInstruments::remember`]).

use std::collections::HashSet;

use parking_lot::Mutex;

/// At most this many catalog keys are remembered; past it, lookups go to the engine (a
/// stream of made-up instrument ids must not grow memory without bound).
const MAX_REMEMBERED: usize = 100_000;

/// Catalog keys (see [`crate::keys::instrument`]) known to be in the engine.
#[derive(Debug, Default)]
pub struct KnownInstruments {
    keys: Mutex<HashSet<Vec<u8>>>,
}

impl KnownInstruments {
    /// Whether the catalog key `key` is known to be in the engine.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.lock().contains(key)
    }

    /// Remembers catalog keys now in the engine.
    pub fn remember(&self, keys: impl IntoIterator<Item = Vec<u8>>) {
        let mut known = self.keys.lock();
        for key in keys {
            if known.len() >= MAX_REMEMBERED {
                return;
            }
            known.insert(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_keys_up_to_its_bound() {
        let known = KnownInstruments::default();
        assert!(!known.contains(b"a"));
        known.remember([b"a".to_vec()]);
        assert!(known.contains(b"a"));
        known.remember((0..MAX_REMEMBERED + 10).map(|i| i.to_string().into_bytes()));
        assert_eq!(known.keys.lock().len(), MAX_REMEMBERED);
    }
}
