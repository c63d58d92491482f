//! Leveled compaction: what to compact ([`picker`]), how ([`job`], cutting its output where [`cuts`] says) and how hard writers are
//! pushed back while compaction is behind ([`pressure`]). The engine runs jobs on its own
//! compaction threads.

pub mod cuts;
pub mod job;
pub mod picker;
pub mod pressure;

pub use picker::LevelShape;
pub use pressure::{PressureLimits, WritePressure};
