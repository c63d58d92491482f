//! QAStore's Raft layer: the openraft adapter.
//!
//! This crate will hold the type configuration, the log store on the storage crate's WAL (the
//! Raft log *is* the WAL), the state machine on the storage engine, snapshots as engine
//! checkpoints, and the peer network. It is the only crate that depends on openraft.
