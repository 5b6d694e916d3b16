//! Shared helpers for the r8s benchmark binaries: latency statistics and result tables.

pub mod stats;

pub use stats::{Measurement, Summary, run_concurrent};
