//! The default plugins: filters and scores as plain functions over the cache, grouped as
//! upstream groups them.

pub mod basic;
pub mod interpod;
pub mod resources;
pub mod spread;
pub mod volume;
