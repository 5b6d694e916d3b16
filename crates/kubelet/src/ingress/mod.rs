//! The built-in Ingress controller (k3s ships Traefik for this): an HTTP(S) reverse proxy
//! on the node serving the Ingresses of IngressClasses with controller
//! `r8s.io/ingress-controller` (the default class `r8s`, `class.rs`). Started by
//! `r8s server` next to its agent.
//!
//! Ingresses, IngressClasses, Services, EndpointSlices and TLS Secrets are mirrored by
//! watches; after a change (debounced) an immutable [`Snapshot`] — the routing table
//! (`routes.rs`), the ready endpoints of its backends (`backends.rs`) and the certificates
//! by server name (`tls.rs`) — is built and swapped in, so requests (`proxy.rs`) never wait
//! on a rebuild. Served Ingresses get this node's address in their status (`status.rs`).

pub mod backends;
pub mod class;
pub mod proxy;
pub mod routes;
pub mod status;
pub mod tls;

pub use class::ensure_class;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use rustls::sign::CertifiedKey;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Changes arriving within this window are applied together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Delay before failed status writes are tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Where the controller listens and what it reports.
#[derive(Clone, Debug)]
pub struct IngressConfig {
    /// The node's InternalIP, written to the served Ingresses' status.
    pub node_ip: IpAddr,
    /// The listeners' address (`0.0.0.0` in `r8s server`).
    pub bind_address: IpAddr,
    /// Plain HTTP port (80); 0 picks a free one.
    pub http_port: u16,
    /// HTTPS port (443); 0 picks a free one.
    pub https_port: u16,
}

impl IngressConfig {
    /// Listening on every address, on these ports.
    pub fn new(node_ip: IpAddr, http_port: u16, https_port: u16) -> Self {
        IngressConfig {
            node_ip,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port,
            https_port,
        }
    }
}

/// What requests are routed with; replaced whole after every change.
#[derive(Debug)]
pub struct Snapshot {
    pub routes: routes::Routes,
    pub upstreams: backends::Upstreams,
    pub certs: tls::Certs,
}

/// The current snapshot, shared by the listeners and the TLS resolver.
#[derive(Debug)]
pub struct Shared(RwLock<Arc<Snapshot>>);

impl Shared {
    fn new(snapshot: Snapshot) -> Shared {
        Shared(RwLock::new(Arc::new(snapshot)))
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, snapshot: Snapshot) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }
}

/// The bound listeners; a port that could not be bound is None.
pub struct Listeners {
    http: Option<TcpListener>,
    https: Option<TcpListener>,
}

impl Listeners {
    /// Bind both ports; a failure (port in use, no privilege) is logged, not fatal.
    pub async fn bind(cfg: &IngressConfig) -> Listeners {
        let bind = |port: u16, what: &'static str| async move {
            let addr = SocketAddr::new(cfg.bind_address, port);
            match TcpListener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!("ingress controller cannot listen for {what} on {addr}: {e}");
                    None
                }
            }
        };
        Listeners {
            http: bind(cfg.http_port, "HTTP").await,
            https: bind(cfg.https_port, "HTTPS").await,
        }
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Bind and serve until the process ends.
pub async fn run(client: kube::Client, cfg: IngressConfig) {
    let listeners = Listeners::bind(&cfg).await;
    serve(client, cfg, listeners).await;
}

/// Mirror every object of a kind (those matching `fields`) into a store, poking `changed`
/// after every event.
fn mirror<K: crate::mirror::Mirrored>(
    client: &kube::Client,
    fields: Option<&str>,
    changed: &Arc<Notify>,
    tasks: &mut JoinSet<()>,
) -> Store<K> {
    let mut config = watcher::Config::default();
    if let Some(f) = fields {
        config = config.fields(f);
    }
    let (store, feed) =
        crate::mirror::mirror(Api::<K>::all(client.clone()), config, changed.clone());
    tasks.spawn(feed);
    store
}

/// Serve on `listeners` until the returned future is dropped (which stops the listeners
/// and watches too).
pub async fn serve(client: kube::Client, cfg: IngressConfig, listeners: Listeners) {
    let Listeners { http, mut https } = listeners;
    let default_cert = match tls::self_signed() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("ingress default certificate: {e}; HTTPS is off");
            https = None;
            None
        }
    };
    let (Some(default_cert), false) = (default_cert, http.is_none() && https.is_none()) else {
        tracing::warn!("ingress controller has no listener: Ingresses are not served");
        return;
    };
    let shared = Arc::new(Shared::new(Snapshot {
        routes: routes::Routes::default(),
        upstreams: backends::Upstreams::new(),
        certs: tls::Certs::only(default_cert.clone()),
    }));
    let mut tasks = JoinSet::new();
    if let Some(l) = http {
        tracing::info!(addr = ?l.local_addr().ok(), "ingress controller serving HTTP");
        tasks.spawn(proxy::serve(l, None, shared.clone()));
    }
    if let Some(l) = https {
        match tls::server_config(tls::Resolver(shared.clone())) {
            Ok(config) => {
                tracing::info!(addr = ?l.local_addr().ok(), "ingress controller serving HTTPS");
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                tasks.spawn(proxy::serve(l, Some(acceptor), shared.clone()));
            }
            Err(e) => tracing::warn!("ingress TLS config: {e}; HTTPS is off"),
        }
    }
    let changed = Arc::new(Notify::new());
    let ingresses = mirror::<Ingress>(&client, None, &changed, &mut tasks);
    let classes = mirror::<IngressClass>(&client, None, &changed, &mut tasks);
    let services = mirror::<Service>(&client, None, &changed, &mut tasks);
    let slices = mirror::<EndpointSlice>(&client, None, &changed, &mut tasks);
    // Only TLS Secrets: the others are none of our business (and may be many).
    let tls_only = Some("type=kubernetes.io/tls");
    let secrets = mirror::<Secret>(&client, tls_only, &changed, &mut tasks);
    // Building from half-listed caches would take away routes and status for a moment.
    let _ = futures::join!(
        ingresses.wait_until_ready(),
        classes.wait_until_ready(),
        services.wait_until_ready(),
        slices.wait_until_ready(),
        secrets.wait_until_ready(),
    );
    let ip = cfg.node_ip.to_string();
    let mut reported = HashSet::new();
    loop {
        let all_ingresses = ingresses.state();
        let classes = class::Classes::new(&classes.state());
        let served: Vec<&Ingress> = all_ingresses
            .iter()
            .map(|i| &**i)
            .filter(|i| classes.serves(i))
            .collect();
        let (snapshot, problems) = build(
            &served,
            &services.state(),
            &slices.state(),
            &secrets.state(),
            &default_cert,
        );
        shared.store(snapshot);
        tracing::debug!(ingresses = served.len(), "ingress routes rebuilt");
        // Each problem once, not at every rebuild.
        for p in &problems {
            if !reported.contains(p) {
                tracing::warn!("ingress TLS: {p}");
            }
        }
        reported = problems.into_iter().collect();
        if status::sync(&client, &ip, &all_ingresses, &classes).await {
            changed.notified().await;
        } else {
            // Failed status writes are tried again even if nothing changes.
            let _ = tokio::time::timeout(RETRY, changed.notified()).await;
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// The snapshot of the served Ingresses, with what was wrong with their TLS Secrets.
pub fn build(
    served: &[&Ingress],
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    secrets: &[Arc<Secret>],
    default_cert: &Arc<CertifiedKey>,
) -> (Snapshot, Vec<String>) {
    let mut served = served.to_vec();
    routes::sort_by_age(&mut served);
    let routes = routes::Routes::build(&served);
    let upstreams = backends::resolve(routes.backends(), services, slices);
    let (certs, problems) = tls::build(&served, secrets, default_cert);
    (
        Snapshot {
            routes,
            upstreams,
            certs,
        },
        problems,
    )
}
