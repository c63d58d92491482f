//! QAStore's chaos harness: real `qastore serve` processes, a fault proxy on every peer link
//! ([`proxy`]), nemeses ([`nemesis`]), a workload that records a history ([`workload`],
//! [`history`]), and checkers ([`checker`]): linearizability per register, reads at their
//! applied index, no acknowledged write lost, exactly-once application, convergence.
//! [`run::run`] does one run and reports it.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod run;
pub mod workload;

/// A failure of the harness itself (not of the system under test): the run is inconclusive.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(pub String);

impl From<qastore_testkit::KitError> for HarnessError {
    fn from(e: qastore_testkit::KitError) -> HarnessError {
        HarnessError(e.to_string())
    }
}
