//! Leveled compaction: what to compact ([`picker`]), how ([`job`]) and how hard writers are
//! pushed back while compaction is behind ([`pressure`]). The engine runs jobs on its own
//! compaction threads.

pub mod job;
pub mod picker;
pub mod pressure;

pub use picker::LevelShape;
pub use pressure::{PressureLimits, WritePressure};
