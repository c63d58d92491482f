//! QAStore's test kit: what the process tests, the chaos harness, the demo and the cluster
//! benchmarks share, so that each of them drives real nodes the same way.
//!
//! * [`ProcCluster`] (with [`ClusterSpec`], [`Ports`] and [`NodeProc`]): a cluster of
//!   `qastore serve` processes on this machine, each with its config, data directory, ports,
//!   log and pid file; start, wait for a leader, kill, pause, restart, stop, read the logs.
//!   [`spawn_logged`], [`free_addresses`] and [`find_qastore`] serve programs that start other
//!   servers beside it. [`pids`] and [`locks`] tell later programs which nodes of a directory
//!   still run.
//! * [`signal`]: the one way the kit and its users send signals to processes.
//! * [`samples`]: sample records as API records; [`requests`]: small request helpers for the
//!   tests; [`http`]: a plain HTTP GET on a node's HTTP port.
//! * [`workload`] and [`load`]: realistic exchange records and the closed-loop load engine
//!   behind `qastore bench`, the demo and the cluster benchmarks ([`CpuUsage`] is the machine's
//!   CPU use during a measured window).
//! * [`KitError`]: every failure of the kit.

pub mod certs;
mod cluster;
mod cpu;
mod error;
mod exe;
pub mod feed;
pub mod http;
pub mod load;
pub mod locks;
pub mod pids;
mod ports;
pub mod requests;
pub mod samples;
pub mod signal;
pub mod workload;

pub use cluster::{spawn_logged, ClusterSpec, NodeProc, Ports, ProcCluster};
pub use cpu::{process_cpu_secs, processes_cpu_secs, CpuSample, CpuUsage};
pub use error::KitError;
pub use exe::find_qastore;
pub use ports::free_addresses;
pub use signal::Signal;

/// Process tests of one test program run one at a time: each starts its own cluster, and the
/// machine has only so many cores for the nodes' elections.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
