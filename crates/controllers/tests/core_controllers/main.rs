//! Integration tests of the namespace, garbage collector, service account and endpoints
//! controllers and the event recorder, each against an in-process API server.

mod endpoints;
mod events;
mod garbage_collector;
mod namespace;
mod serviceaccount;
#[path = "../support/mod.rs"]
mod support;
