//! A tiny key/value application for testing the Raft layer on its own: a command is the bytes
//! `key=value`, applying it stores the value and answers the previous one. It also counts the
//! values it has stored, in the engine (in the same batch) and in memory, so a test can tell
//! whether the in-memory state followed a snapshot (`reload`) or a restart (`open`).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use qastore_lsm::{Engine, WriteBatch};
use qastore_raft::{AppError, Application, Applied, Payload, Request};

/// The command that asks for a hash mark.
const HASH_MARK: &[u8] = b"#hash-mark";
/// Where the number of stored values is kept. Values sort before the Raft keys and this one
/// after them, as an application's data usually does: damage to the first tables' blocks
/// then hits data, which a node repairs, not the keys it reads to start.
const COUNT_KEY: &[u8] = b"~toy/count";

/// The engine key of `key`.
pub fn key_of(key: &str) -> Vec<u8> {
    [b"kv/".as_slice(), key.as_bytes()].concat()
}

/// The request that stores `value` under `key`.
pub fn put(key: &str, value: &str) -> Request {
    Request::from_bytes(Bytes::from(format!("{key}={value}")))
}

/// What applying an entry answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The value was stored; the one it replaced, if any.
    Stored(Option<String>),
    /// The command was refused (it is not `key=value`, or was already applied).
    Refused(String),
    /// A hash mark was applied.
    HashMarked,
    /// An entry without a command.
    Nothing,
}

/// A value starting with this is stored, then its entry's apply lingers for
/// [`SLOW_APPLY`] before it returns: its data shows in the engine while the entry is still
/// being applied.
pub const SLOW_PREFIX: &str = "slow:";

/// How long an entry storing a [`SLOW_PREFIX`] value lingers after writing it.
pub const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(300);

/// The key/value application.
#[derive(Debug)]
pub struct Toy {
    stored: AtomicU64,
}

fn count_in(engine: &Engine) -> Result<u64, AppError> {
    Ok(match engine.get(COUNT_KEY)? {
        Some(b) => u64::from_le_bytes(
            b.as_ref()
                .try_into()
                .map_err(|_| AppError::other("the stored count is not 8 bytes"))?,
        ),
        None => 0,
    })
}

impl Toy {
    /// How many values this node's application has stored, as it holds in memory.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::SeqCst)
    }
}

impl Application for Toy {
    type Response = Answer;

    fn open(engine: &Engine) -> Result<Self, AppError> {
        Ok(Toy {
            stored: AtomicU64::new(count_in(engine)?),
        })
    }

    fn reload(&self, engine: &Engine) -> Result<(), AppError> {
        self.stored.store(count_in(engine)?, Ordering::SeqCst);
        Ok(())
    }

    fn apply(
        &self,
        engine: &Engine,
        index: u64,
        payload: Payload<'_>,
        mut system: WriteBatch,
    ) -> Result<Applied<Answer>, AppError> {
        let bytes = match payload {
            Payload::Nothing => {
                engine.apply(&system, index)?;
                return Ok(Applied::answer(Answer::Nothing));
            }
            Payload::Command(b) => b,
        };
        if bytes.as_ref() == HASH_MARK {
            engine.apply(&system, index)?;
            return Ok(Applied {
                response: Answer::HashMarked,
                hash_mark: true,
            });
        }
        let text = std::str::from_utf8(bytes).ok();
        let Some((key, value)) = text.and_then(|t| t.split_once('=')) else {
            engine.apply(&system, index)?;
            return Ok(Applied::answer(Answer::Refused("not key=value".into())));
        };
        let previous = engine
            .get(&key_of(key))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let count = count_in(engine)? + 1;
        system.put(key_of(key), Bytes::copy_from_slice(value.as_bytes()));
        system.put(COUNT_KEY, Bytes::copy_from_slice(&count.to_le_bytes()));
        engine.apply(&system, index)?;
        self.stored.store(count, Ordering::SeqCst);
        if value.starts_with(SLOW_PREFIX) {
            std::thread::sleep(SLOW_APPLY);
        }
        Ok(Applied::answer(Answer::Stored(previous)))
    }

    fn already_applied(reason: String) -> Answer {
        Answer::Refused(reason)
    }

    fn hash_mark_command() -> Bytes {
        Bytes::from_static(HASH_MARK)
    }
}
