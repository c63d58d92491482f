//! Who may call what on the client API: the role each method needs ([`policy`]), the gate every
//! call passes ([`gate`]) and where a client's roles come from ([`roles`]).

pub mod audit;
pub mod gate;
pub mod policy;
pub mod roles;
pub mod scope;
pub mod table;

pub use gate::{Caller, Gate, Gated};
