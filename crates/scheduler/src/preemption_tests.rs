//! Preemption tests.
