//! Cycle tests live in their own file (see the bottom of cycle.rs).
