//! One simulated file: its bytes, and enough history to bring back its last synced state.

use rand::rngs::SmallRng;
use rand::Rng;

/// What survives of bytes written after a file's last fsync when the power is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCut {
    /// Every unsynced byte is lost (the strictest model).
    DropUnsynced,
    /// A random prefix of each file's unsynced appended tail survives, the rest is lost: a write
    /// torn part-way.
    KeepRandomPrefix,
    /// The file keeps a random part of its unsynced length, but those bytes read as zeros (the
    /// size reached the disk, the data did not).
    ZeroFillTail,
}

/// A file's bytes and what of them is durable.
#[derive(Debug, Default)]
pub(super) struct Inode {
    pub data: Vec<u8>,
    /// Length of the file at its last `sync_data`.
    durable_len: usize,
    /// Old bytes overwritten since the last sync, as (offset, bytes), oldest first: replaying
    /// them backwards restores the synced content.
    undo: Vec<(usize, Vec<u8>)>,
}

impl Inode {
    pub fn write(&mut self, offset: usize, src: &[u8]) {
        let end = offset + src.len();
        if offset < self.durable_len {
            let old_end = end.min(self.data.len()).min(self.durable_len);
            if old_end > offset {
                self.undo
                    .push((offset, self.data[offset..old_end].to_vec()));
            }
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(src);
    }

    pub fn set_len(&mut self, len: usize) {
        if len < self.durable_len && len < self.data.len() {
            let old_end = self.data.len().min(self.durable_len);
            self.undo.push((len, self.data[len..old_end].to_vec()));
        }
        self.data.resize(len, 0);
    }

    pub fn sync(&mut self) {
        self.durable_len = self.data.len();
        self.undo.clear();
    }

    pub fn lose_unsynced(&mut self, mode: PowerCut, rng: &mut SmallRng) {
        let tail_survives = self.undo.is_empty() && self.data.len() > self.durable_len;
        if tail_survives && mode != PowerCut::DropUnsynced {
            let tail = self.data.len() - self.durable_len;
            let keep = rng.random_range(0..=tail);
            self.data.truncate(self.durable_len + keep);
            if mode == PowerCut::ZeroFillTail {
                self.data[self.durable_len..].fill(0);
            }
        } else {
            for (offset, old) in self.undo.drain(..).rev() {
                let end = offset + old.len();
                if self.data.len() < end {
                    self.data.resize(end, 0);
                }
                self.data[offset..end].copy_from_slice(&old);
            }
            self.data.resize(self.durable_len, 0);
        }
        self.sync();
    }
}
