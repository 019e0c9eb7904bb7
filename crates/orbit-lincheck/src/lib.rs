//! A linearizability checker for key-value histories recorded by concurrent
//! clients: put, get and delete, checked per key against a register model
//! with the Wing & Gong search and Lowe's memoisation (the algorithm of
//! porcupine). Operations whose outcome is unknown (timeouts) may have taken
//! effect at any point after their call, or never. The search is bounded: past
//! the state limit a key is reported inconclusive, never checked forever.

mod check;
mod history;

pub use check::{KeyVerdict, Limits, Outcome, Violation, check, check_key};
pub use history::{HistoryError, Op, Operation, parse};
