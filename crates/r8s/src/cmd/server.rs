//! `r8s server`: open the store, start the API server, run until SIGINT/SIGTERM.

use crate::cli::ServerArgs;
use anyhow::Context;
use std::net::{IpAddr, Ipv4Addr};

/// Run the server until a termination signal.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let data_dir = args.data.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = r8s_store::open(&args.datastore_endpoint, &super::sqlite_path(&data_dir))
        .await
        .context("opening the datastore")?;
    tracing::info!(backend = store.backend(), "datastore open");
    let node_ip = args.node_ip.unwrap_or_else(default_route_ip);
    let cfg = r8s_apiserver::Config {
        data_dir: data_dir.clone(),
        bind_address: args.bind_address,
        port: args.https_listen_port,
        advertise_address: node_ip,
        service_cidr: args.service_cidr.clone(),
        write_kubeconfig: args.write_kubeconfig.clone(),
        tls_sans: args.tls_san.clone(),
        metric_resolution: args.metric_resolution,
    };
    let running = r8s_apiserver::start(cfg, store)
        .await
        .context("starting the API server")?;
    println!(
        "r8s server listening on https://{} ; kubeconfig: {}",
        running.local_addr,
        running.kubeconfig.display()
    );
    // One client per component, each naming itself in its User-Agent as upstream's do:
    // the API server records that name as the field manager of their writes
    // (`kube-controller-manager`, `kube-scheduler`, `kubelet`…) instead of `unknown`.
    let client = component_client(&running.kubeconfig, "r8s").await?;
    let controllers_client =
        component_client(&running.kubeconfig, "kube-controller-manager").await?;
    let scheduler_client = component_client(&running.kubeconfig, "kube-scheduler").await?;
    // Start controllers and the scheduler once bootstrap is done, so their first Lease
    // attempt succeeds and the `default` ServiceAccounts appear right after /readyz.
    while !running
        .state
        .ready
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ensure_local_path_class(&client).await;
    // The Ingress controller runs with the agent; its class exists only where it runs.
    let ingress = !args.disable_agent && !args.disable_ingress;
    if ingress {
        r8s_kubelet::ingress::ensure_class(&client).await;
    }
    let identity = format!(
        "{}_{}",
        r8s_apiserver::pki::detect_hostname().unwrap_or_else(|| "r8s".into()),
        uuid::Uuid::new_v4()
    );
    tokio::spawn(crate::leader::run_with_lease(
        controllers_client.clone(),
        "kube-controller-manager",
        identity.clone(),
        {
            let client = controllers_client.clone();
            let mut cfg = r8s_controllers::ManagerConfig::default();
            cfg.node_lifecycle.cluster_cidr = args.cluster_cidr.clone();
            cfg.node_lifecycle.node_monitor_grace_period = args.node_monitor_grace_period;
            cfg.root_ca_pem = Some(running.pki.ca_pem.clone());
            cfg.signing_ca = Some(r8s_controllers::csrsigning::SigningCa {
                cert_pem: running.pki.ca_pem.clone(),
                key_pem: running.pki.ca_key.clone(),
            });
            cfg.persistent_volumes.local_path_dir = Some(data_dir.join("storage"));
            cfg.persistent_volumes.default_node = (!args.disable_agent).then(|| node_name(&args));
            cfg.pod_autoscaler.sync_period = args.horizontal_pod_autoscaler_sync_period;
            cfg.pod_autoscaler.downscale_stabilization =
                args.horizontal_pod_autoscaler_downscale_stabilization;
            move || {
                r8s_controllers::run_all_with(
                    r8s_controllers::Context::new(client.clone()),
                    cfg.clone(),
                )
            }
        },
    ));
    tokio::spawn(crate::leader::run_with_lease(
        scheduler_client.clone(),
        "kube-scheduler",
        identity.clone(),
        {
            let client = scheduler_client.clone();
            move || r8s_scheduler::run(client.clone(), r8s_scheduler::SchedulerConfig::default())
        },
    ));
    let mut agent = None;
    if !args.disable_agent {
        let client = component_client(&running.kubeconfig, "kubelet").await?;
        let node_name = node_name(&args);
        let mut kcfg = r8s_kubelet::KubeletConfig::new(&node_name, node_ip, data_dir.clone());
        kcfg.runtime_endpoint = args.container_runtime_endpoint.clone();
        kcfg.cluster_cidr = args.cluster_cidr.clone();
        kcfg.allocate_pod_cidr = false; // the controller manager's node IPAM assigns it
        kcfg.control_plane = true;
        kcfg.server_addr = Some(std::net::SocketAddr::new(
            args.bind_address,
            args.kubelet_port,
        ));
        kcfg.server_tls = Some(kubelet_tls(&running.pki, &node_name, node_ip)?);
        // The node's service proxy (kube-proxy), NetworkPolicy enforcement, Ingress
        // controller and cluster DNS run with the agent.
        tokio::spawn(r8s_kubelet::proxy::run(client.clone(), node_name.clone()));
        if !args.disable_network_policy {
            tokio::spawn(r8s_kubelet::netpol::run(client.clone(), node_name.clone()));
        }
        if ingress {
            tokio::spawn(r8s_kubelet::ingress::run(
                client.clone(),
                r8s_kubelet::ingress::IngressConfig::new(
                    node_ip,
                    args.ingress_http_port,
                    args.ingress_https_port,
                ),
            ));
        }
        if let Some(cluster_ip) = cluster_dns_ip(&args.service_cidr) {
            kcfg.cluster_dns = Some(IpAddr::V4(cluster_ip));
            tokio::spawn(r8s_kubelet::dns::run(
                client.clone(),
                r8s_kubelet::dns::DnsConfig {
                    node_name: node_name.clone(),
                    cluster_ip,
                    domain: kcfg.cluster_domain.clone(),
                },
                args.service_cidr.parse().ok(),
            ));
        }
        agent = Some(
            r8s_kubelet::Kubelet::start(client.clone(), kcfg)
                .await
                .context("starting the node agent")?,
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(agent) = agent {
        // Pods keep running; the next start adopts them.
        agent.shutdown(false).await;
    }
    running.abort();
    Ok(())
}

/// The cluster DNS Service's ClusterIP: the tenth address of the service CIDR
/// (`10.43.0.10` by default, as k3s).
fn cluster_dns_ip(service_cidr: &str) -> Option<std::net::Ipv4Addr> {
    let (net, _) = service_cidr.split_once('/')?;
    let base: std::net::Ipv4Addr = net.parse().ok()?;
    Some(std::net::Ipv4Addr::from(u32::from(base) + 10))
}

/// The name of this server's own node.
fn node_name(args: &ServerArgs) -> String {
    args.node_name
        .clone()
        .or_else(r8s_apiserver::pki::detect_hostname)
        .unwrap_or_else(|| "r8s-node".into())
}

/// The default `local-path` StorageClass (k3s's, with the same provisioner name), made
/// once; an admin's edits are kept, and a deleted one comes back at the next start.
async fn ensure_local_path_class(client: &kube::Client) {
    use k8s_openapi::api::storage::v1::StorageClass;
    let class: StorageClass = match serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "local-path",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": r8s_controllers::persistentvolume::matching::LOCAL_PATH_PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    })) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("local-path StorageClass: {e}");
            return;
        }
    };
    let api: kube::Api<StorageClass> = kube::Api::all(client.clone());
    match api.create(&Default::default(), &class).await {
        Ok(_) => tracing::info!("created the default local-path StorageClass"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => tracing::warn!("creating the local-path StorageClass: {e}"),
    }
}

/// The agent's serving certificate (signed by the cluster CA, which the API server
/// trusts) and the CA its clients' certificates must chain to.
fn kubelet_tls(
    pki: &r8s_apiserver::pki::Pki,
    node_name: &str,
    node_ip: IpAddr,
) -> anyhow::Result<r8s_kubelet::ServerTls> {
    let names = [node_name.to_string(), "localhost".to_string()];
    let ips = [node_ip, IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let (cert_pem, key_pem) = pki
        .sign_serving_cert(&names, &ips)
        .context("issuing the node agent's serving certificate")?;
    Ok(r8s_kubelet::ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem: pki.ca_pem.clone(),
    })
}

/// A kube-rs client of our own API server, as the admin user: controllers and the
/// scheduler talk to the API like any other client. `component` goes into the
/// User-Agent the way upstream's components send it
/// (`kube-scheduler/v1.33.0 (linux/amd64) kubernetes/r8s`).
pub async fn component_client(
    kubeconfig: &std::path::Path,
    component: &str,
) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("building the API client config")?;
    cfg.headers.push((
        http::header::USER_AGENT,
        http::header::HeaderValue::from_str(&user_agent(component))
            .context("component name in User-Agent")?,
    ));
    kube::Client::try_from(cfg).context("building the API client")
}

/// `<component>/<version> (<os>/<arch>) kubernetes/r8s`, with Go's architecture names.
fn user_agent(component: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "{component}/{} ({}/{arch}) kubernetes/r8s",
        r8s_api::KUBERNETES_VERSION,
        std::env::consts::OS
    )
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The address of the interface holding the default route: the local address the kernel
/// would pick for an outside destination. A UDP `connect` only selects a route; no packet
/// is sent. Falls back to loopback on a machine without a default route.
fn default_route_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sock.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(sock.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
