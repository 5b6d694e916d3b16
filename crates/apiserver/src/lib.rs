//! The r8s API server: the Kubernetes REST API over the store.
//!
//! - [`server`]: HTTPS listener, TLS client-cert authentication, routing.
//! - [`handlers`]: request handling (discovery, OpenAPI, health, resource verbs).
//! - [`registry`]: the one generic registry (create/get/list/update/patch/delete/watch)
//!   parameterised by per-kind strategies from `r8s-api`.
//! - [`pki`], [`tls`]: cluster CA, certificates, kubeconfig.
//! - [`auth`], [`authz`]: authentication (certificates, join token, service-account
//!   tokens, impersonation) and RBAC authorization; [`bootstrap_rbac`]: the default policy.

pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod bootstrap_rbac;
pub mod error;
pub mod handlers;
pub mod meta;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod request;
pub mod resource_metrics;
pub mod server;
pub mod state;
#[doc(hidden)]
pub mod testing;
pub mod tls;

pub use server::{Config, Running, start};
