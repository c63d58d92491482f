//! The node's live engine, which installing a snapshot replaces.
//!
//! Readers take a short-lived handle ([`EngineSlot::get`]). A switch empties the slot, waits
//! until every handle is dropped (the old engine closes: its threads stop, its lock is
//! released), and only then fills it with the engine opened on the new directory.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use qastore_lsm::Engine;

use crate::error::{Error, Result};

/// Holds the live engine.
#[derive(Debug)]
pub struct EngineSlot {
    current: RwLock<Option<Arc<Engine>>>,
    /// Set once the node shuts down: the slot stays empty from then on.
    retired: std::sync::atomic::AtomicBool,
}

impl EngineSlot {
    /// A slot holding `engine`.
    pub fn new(engine: Engine) -> Self {
        EngineSlot {
            current: RwLock::new(Some(Arc::new(engine))),
            retired: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The live engine. Fails while a snapshot is being installed.
    pub fn get(&self) -> Result<Arc<Engine>> {
        self.current.read().clone().ok_or_else(|| {
            if self.retired.load(std::sync::atomic::Ordering::Acquire) {
                Error::Stopped("the node is shutting down".into())
            } else {
                Error::Stopped("the engine is being replaced by a snapshot".into())
            }
        })
    }

    /// Closes the engine for good, when the node shuts down: waits until every handle (a
    /// query, a snapshot being built) is dropped and the engine's threads have stopped, so
    /// nothing writes into the data directory after this returns.
    pub async fn retire(&self) -> Result<()> {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        self.close().await
    }

    /// Empties the slot and waits until the engine it held is closed.
    pub async fn close(&self) -> Result<()> {
        let Some(mut engine) = self.current.write().take() else {
            return Ok(());
        };
        // Readers hold handles for the length of one query; give them time to finish.
        for _ in 0..6000 {
            match Arc::try_unwrap(engine) {
                Ok(e) => {
                    tokio::task::spawn_blocking(move || drop(e))
                        .await
                        .map_err(|e| Error::Stopped(e.to_string()))?;
                    return Ok(());
                }
                Err(shared) => {
                    engine = shared;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        // Put it back rather than leave the node without an engine.
        *self.current.write() = Some(engine);
        Err(Error::Timeout(
            "engine handles were held for over a minute; snapshot not installed".into(),
        ))
    }

    /// Fills the emptied slot.
    pub fn put(&self, engine: Engine) {
        *self.current.write() = Some(Arc::new(engine));
    }
}
