//! QAStore's chaos harness: real node processes, a fault proxy on every peer link, nemeses, a
//! workload that records a history, and a linearizability checker.
