//! Whether this node is still a member of its cluster, including when the entry that removed
//! it never reached it.
//!
//! A leader stops replicating to a node as soon as a membership without that node takes
//! effect, so a removed node's own log often still lists it (as a learner, after the demotion
//! that precedes a voter's removal). Left alone it would go on serving its frozen state. So a
//! node that has heard nothing from a leader for longer than the longest election timeout asks
//! the leader it knows (or, knowing none, every member it knows) for its status and members: a
//! leader of this node's term or a later one that no longer lists it settles the question.
//! The answer is kept in `<data dir>/REMOVED`, so a restarted removed node refuses to serve
//! from its first request, not only after it has asked again. The asking is done by
//! [`crate::membership_watch`].

use std::path::{Path, PathBuf};

use crate::replicated::ExchangeNode;
use parking_lot::Mutex;

/// What a node is to its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// It is listed in the membership it goes by, and no leader said otherwise.
    Member,
    /// It was removed.
    Removed(Removal),
    /// It has no membership yet: it waits to be added.
    NotAdded,
}

/// How a node learned it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Its own log holds a membership without it.
    InLog,
    /// The leader `leader`, in `term`, no longer lists it.
    ToldBy {
        /// The leader that answered.
        leader: u64,
        /// The leader's term.
        term: u64,
    },
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::InLog => write!(f, "its log holds a membership without it"),
            Removal::ToldBy { leader, term } => {
                write!(
                    f,
                    "the leader, node {leader} (term {term}), no longer lists it"
                )
            }
        }
    }
}

/// The file, in the data directory, that keeps a leader's word across restarts.
pub const REMOVED_FILE: &str = "REMOVED";

/// A leader's word that this node is no longer a member, kept while the node's own membership
/// stays the one it had when told (a newer membership, such as being added back, replaces it).
#[derive(Debug, Default)]
pub struct RemovalNotice {
    told: Mutex<Option<(Option<u64>, Removal)>>,
    file: Option<PathBuf>,
}

impl RemovalNotice {
    /// A notice kept in `<data_dir>/REMOVED`, starting from what an earlier run recorded there.
    /// A damaged file is reported and ignored: the node then asks the leader again.
    pub fn persisted(data_dir: &Path) -> Self {
        let file = data_dir.join(REMOVED_FILE);
        let told = match std::fs::read_to_string(&file) {
            Ok(text) => decode(&text).or_else(|| {
                tracing::warn!(file = %file.display(), "ignoring a damaged removal record");
                None
            }),
            Err(_) => None,
        };
        RemovalNotice {
            told: Mutex::new(told),
            file: Some(file),
        }
    }

    /// Records a leader's word and keeps it on disk (crash-atomically), off the async runtime.
    pub(crate) async fn record_durably(&self, membership_index: Option<u64>, removal: Removal) {
        self.record(membership_index, removal.clone());
        let Some(file) = self.file.clone() else {
            return;
        };
        let text = encode(membership_index, &removal);
        let vfs = qastore_lsm::vfs::OsVfs::shared();
        let written = tokio::task::spawn_blocking(move || {
            qastore_lsm::vfs::write_atomic(vfs.as_ref(), &file, text.as_bytes())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not record the removal on disk"),
            Err(e) => tracing::error!(error = %e, "could not record the removal on disk"),
        }
    }

    /// The removal a leader reported, if the node still goes by the membership at
    /// `membership_index` it had then.
    pub fn current(&self, membership_index: Option<u64>) -> Option<Removal> {
        self.told
            .lock()
            .as_ref()
            .filter(|(at, _)| *at == membership_index)
            .map(|(_, r)| r.clone())
    }

    fn record(&self, membership_index: Option<u64>, removal: Removal) {
        *self.told.lock() = Some((membership_index, removal));
    }
}

/// The removal record's text: a header, the membership index, the leader and term, a CRC.
fn encode(membership_index: Option<u64>, removal: &Removal) -> String {
    let index = membership_index.map_or_else(|| "none".to_string(), |i| i.to_string());
    let (leader, term) = match removal {
        Removal::ToldBy { leader, term } => (*leader, *term),
        Removal::InLog => (0, 0),
    };
    let body =
        format!("qastore-removed 1\nmembership_index {index}\nleader {leader}\nterm {term}\n");
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body}crc32 {crc:08x}\n")
}

fn decode(text: &str) -> Option<(Option<u64>, Removal)> {
    let (body, crc_line) = text.rsplit_once("crc32 ")?;
    let crc = u32::from_str_radix(crc_line.trim_end(), 16).ok()?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != "qastore-removed 1" {
        return None;
    }
    let index = match lines.next()?.strip_prefix("membership_index ")? {
        "none" => None,
        n => Some(n.parse().ok()?),
    };
    let leader = lines.next()?.strip_prefix("leader ")?.parse().ok()?;
    let term = lines.next()?.strip_prefix("term ")?.parse().ok()?;
    Some((index, Removal::ToldBy { leader, term }))
}

/// What the node running `raft` is to its cluster now, given the leader's word in `removal`.
pub fn of(raft: &ExchangeNode, removal: &RemovalNotice) -> Membership {
    let (listed, index) = raft.listed_in_membership();
    if !listed {
        return match index {
            Some(_) => Membership::Removed(Removal::InLog),
            None => Membership::NotAdded,
        };
    }
    match removal.current(index) {
        Some(r) => Membership::Removed(r),
        None => Membership::Member,
    }
}

#[cfg(test)]
mod tests {
    use super::{Removal, RemovalNotice};

    #[test]
    fn a_leaders_word_holds_until_the_membership_changes() {
        let notice = RemovalNotice::default();
        assert_eq!(notice.current(Some(7)), None);
        let told = Removal::ToldBy { leader: 1, term: 3 };
        notice.record(Some(7), told.clone());
        assert_eq!(notice.current(Some(7)), Some(told));
        // Added back: a newer membership lists the node again.
        assert_eq!(notice.current(Some(9)), None);
    }

    #[test]
    fn a_removal_record_reads_back_and_a_damaged_one_is_refused() {
        let told = Removal::ToldBy { leader: 2, term: 5 };
        let text = super::encode(Some(11), &told);
        assert_eq!(super::decode(&text), Some((Some(11), told.clone())));
        assert_eq!(
            super::decode(&super::encode(None, &told)),
            Some((None, told))
        );
        let damaged = text.replace("leader 2", "leader 3");
        assert_eq!(super::decode(&damaged), None);
    }
}
