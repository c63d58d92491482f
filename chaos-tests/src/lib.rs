//! QAStore's chaos harness: real `qastore serve` processes, a fault proxy on every peer link,
//! nemeses, a workload that records a history, and checkers: linearizability per register,
//! reads at their applied index, no acknowledged write lost, exactly-once application,
//! convergence, and subscribers on every node receiving exactly the committed events their
//! filters match (in order, none missing, none twice).
//!
//! Public, for the `qastore-chaos` binary and the tests that drive runs:
//! * [`run()`] does one run and returns its [`Report`], configured by [`RunConfig`] with the
//!   [`Nemesis`] kinds to inject; [`Verdict`] is its outcome.
//! * [`run`](mod@run), [`nemesis`], [`checker`], [`history`] and [`subscribers`]: the modules
//!   whose types a [`Report`] carries (the fault timeline, the history check, the recorded
//!   events, each subscriber's check).
//!
//! The process cluster with its link proxies and the workload stay inside the crate.

pub mod checker;
mod cluster;
pub mod history;
pub mod nemesis;
mod proxy;
pub mod run;
pub mod subscribers;
mod workload;

pub use nemesis::Nemesis;
pub use run::{run, Report, RunConfig, Verdict};

/// A failure of the harness itself (not of the system under test): the run is inconclusive.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(pub String);

impl From<qastore_testkit::KitError> for HarnessError {
    fn from(e: qastore_testkit::KitError) -> HarnessError {
        HarnessError(e.to_string())
    }
}
