//! Shared helpers for the r8s benchmark binaries: latency statistics and result tables, a
//! probe that times mutating API calls while a benchmark runs, and a spawned `r8s server`.

pub mod probe;
pub mod server;
pub mod stats;

pub use stats::{Measurement, Summary, run_concurrent};

/// The benchmarks run the in-process server with the allocator the `r8s` binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
