//! The HTTPS server: TLS with optional client certificates, HTTP/1.1 and HTTP/2, one axum
//! router whose fallback is the generic handler.

use crate::auth::Identity;
use crate::bootstrap;
use crate::handlers;
use crate::metrics::Metrics;
use crate::pki::{self, Pki, SanConfig};
use crate::registry::{Allocators, Registry};
use crate::state::AppState;
use crate::tls;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use r8s_store::DynStore;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// What the API server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// Address written into kubeconfigs and discovery (`--node-ip` or loopback).
    pub advertise_address: IpAddr,
    pub service_cidr: String,
    /// Extra kubeconfig path (`--write-kubeconfig`).
    pub write_kubeconfig: Option<PathBuf>,
    /// Extra SANs for the serving certificate.
    pub tls_sans: Vec<String>,
    /// How often kubelets are scraped for the resource metrics API (metrics-server's
    /// `--metric-resolution`).
    pub metric_resolution: std::time::Duration,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("certificates: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("service-account signing key: {0}")]
    ServiceAccountKey(#[from] crate::auth::KeyError),
    #[error("invalid --service-cidr: {0}")]
    ServiceCidr(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    pub local_addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub state: AppState,
    pub pki: Pki,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Wait until the server stops (it only stops on a fatal accept error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stop accepting connections.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Generate/load certificates, write the kubeconfig, bind, bootstrap, and serve.
pub async fn start(cfg: Config, store: DynStore) -> Result<Running, ServerError> {
    let service_ip = pki::first_service_ip(&cfg.service_cidr);
    let mut ips = vec![cfg.advertise_address];
    if !cfg.bind_address.is_unspecified() {
        ips.push(cfg.bind_address);
    }
    let mut sans = SanConfig::new(ips, service_ip);
    sans.dns_names = cfg.tls_sans.clone();
    let pki = pki::load_or_create(&cfg.data_dir, &sans)?;
    let tls_config = tls::server_config(&pki)?;
    let addr = SocketAddr::new(cfg.bind_address, cfg.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    // Like k3s, the local admin kubeconfig talks to loopback unless the server only listens
    // on one specific address.
    let kubeconfig_host = if cfg.bind_address.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        cfg.bind_address
    };
    let server_url = format!(
        "https://{}",
        SocketAddr::new(kubeconfig_host, local_addr.port())
    );
    let kubeconfig = cfg.data_dir.join("kubeconfig.yaml");
    for path in std::iter::once(&kubeconfig).chain(cfg.write_kubeconfig.iter()) {
        pki.write_kubeconfig(path, &server_url)
            .map_err(|source| ServerError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
    }
    let alloc =
        Allocators::new(store.clone(), &cfg.service_cidr).map_err(ServerError::ServiceCidr)?;
    // Issued afresh at each start (never written to disk): the identity the API server
    // presents to kubelets, as upstream's --kubelet-client-certificate.
    let (kubelet_cert, kubelet_key) =
        pki.sign_client_cert("kube-apiserver-kubelet-client", &["system:masters"])?;
    let kubelet_tls =
        crate::proxy::kubelet::client_config(&pki.ca_pem, &kubelet_cert, &kubelet_key)?;
    let tokens = Arc::new(crate::auth::serviceaccount::TokenIssuer::load_or_create(
        &cfg.data_dir,
    )?);
    let registry = Registry::new(store, alloc);
    let server_address = SocketAddr::new(cfg.advertise_address, local_addr.port()).to_string();
    let issuer_discovery = Arc::new(crate::auth::issuer_discovery::IssuerDiscovery::new(
        &tokens,
        &server_address,
    ));
    let state = AppState {
        authz: crate::authz::Authorizer::start(registry.clone()),
        tokens,
        issuer_discovery,
        registry,
        metrics: Arc::new(Metrics::default()),
        token: Arc::new(pki.token.clone()),
        server_address: Arc::new(server_address),
        ready: Arc::new(AtomicBool::new(false)),
        kubelet_tls,
        resource_metrics: Default::default(),
    };
    tokio::spawn(crate::resource_metrics::scrape::run(
        state.clone(),
        cfg.metric_resolution,
    ));
    let boot_state = state.clone();
    let api_endpoint = SocketAddr::new(cfg.advertise_address, local_addr.port());
    tokio::spawn(async move {
        // Retried until it succeeds: /readyz reports not-ready meanwhile.
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match bootstrap::run(&boot_state.registry, api_endpoint).await {
                Ok(()) => {
                    boot_state.ready.store(true, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "bootstrap failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    });
    let app = router(state.clone());
    let acceptor = TlsAcceptor::from(tls_config);
    let task = tokio::spawn(accept_loop(listener, acceptor, app));
    tracing::info!(%local_addr, kubeconfig = %kubeconfig.display(), "API server listening");
    Ok(Running {
        local_addr,
        kubeconfig,
        state,
        pki,
        task,
    })
}

/// The router: everything goes to the generic handler.
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(handlers::handle)
        .layer(axum::extract::DefaultBodyLimit::max(
            handlers::MAX_BODY_BYTES + 1,
        ))
        .with_state(state)
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let identity: Option<Identity> = tls::peer_identity(tls.get_ref().1);
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    if let Some(id) = &identity {
                        req.extensions_mut().insert(id.clone());
                    }
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
}
