//! Cluster DNS (what CoreDNS does in a cluster): pods' `nameserver` is the `kube-dns`
//! Service's ClusterIP, which the service proxy sends to this server on the node's pod
//! bridge gateway. Names under the cluster domain are answered from Services and
//! EndpointSlices (`records.rs`); other names are relayed to the node's own resolvers.
//! UDP only (clients fall back to TCP only for answers over 512 bytes, which A records
//! of a Service do not reach).

pub mod records;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use records::Lookup;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Answers are cached by clients for this long (CoreDNS's default for cluster names).
const TTL: u32 = 5;
/// How long a relayed query waits for the node's resolver.
const RELAY_TIMEOUT: Duration = Duration::from_secs(3);
/// The field manager of the objects this server keeps.
const MANAGER: &str = "r8s-dns";

/// Where the server runs and what it serves.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// This node (its pod CIDR's gateway is where the server listens).
    pub node_name: String,
    /// The `kube-dns` Service's ClusterIP (pods' nameserver).
    pub cluster_ip: Ipv4Addr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The gateway (first address) of the node's pod CIDR, once the controller assigned one.
async fn bridge_gateway(client: &kube::Client, node: &str) -> Ipv4Addr {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let cidr = nodes
            .get_opt(node)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.spec?.pod_cidr);
        if let Some((net, _)) = cidr.as_deref().and_then(|c| c.split_once('/'))
            && let Ok(ip) = net.parse::<Ipv4Addr>()
        {
            return Ipv4Addr::from(u32::from(ip) + 1);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The `kube-dns` Service (fixed ClusterIP, no selector) and its EndpointSlice naming this
/// server, applied server-side so an admin's other fields survive.
async fn publish(
    client: &kube::Client,
    cfg: &DnsConfig,
    gateway: Ipv4Addr,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(MANAGER).force();
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": cfg.cluster_ip.to_string(),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}
    });
    services
        .patch("kube-dns", &params, &Patch::Apply(svc))
        .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kube-dns-r8s", "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns",
                                "endpointslice.kubernetes.io/managed-by": MANAGER}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [gateway.to_string()], "conditions": {"ready": true},
                       "nodeName": cfg.node_name}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]
    });
    slices
        .patch("kube-dns-r8s", &params, &Patch::Apply(slice))
        .await?;
    Ok(())
}

/// A UDP socket on `addr` that may be bound before the address exists (the bridge gets
/// its gateway address with the first pod).
fn bind_early(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    sock.set_freebind_v4(true)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Serve until the process ends (logging why if it cannot start).
pub async fn run(client: kube::Client, cfg: DnsConfig) {
    let gateway = bridge_gateway(&client, &cfg.node_name).await;
    let addr = SocketAddr::new(IpAddr::V4(gateway), 53);
    let socket = match bind_early(addr) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::warn!("cluster DNS cannot listen on {addr}: {e}");
            return;
        }
    };
    loop {
        match publish(&client, &cfg, gateway).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!("publishing the kube-dns Service: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tracing::info!(%addr, cluster_ip = %cfg.cluster_ip, "cluster DNS serving");
    let changed = Arc::new(tokio::sync::Notify::new());
    let services = crate::proxy::mirror(Api::<Service>::all(client.clone()), changed.clone());
    let slices = crate::proxy::mirror(Api::<EndpointSlice>::all(client), changed);
    let upstreams: Vec<SocketAddr> = crate::pod::sandbox::parse_resolv_conf(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    )
    .0
    .iter()
    .filter_map(|n| n.parse::<IpAddr>().ok())
    .map(|ip| SocketAddr::new(ip, 53))
    .collect();
    let upstreams = Arc::new(upstreams);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (socket, services, slices, upstreams, domain) = (
            socket.clone(),
            services.clone(),
            slices.clone(),
            upstreams.clone(),
            cfg.domain.clone(),
        );
        tokio::spawn(async move {
            let reply = match answer(&query, &domain, &services.state(), &slices.state()) {
                Answer::Reply(reply) => Some(reply),
                Answer::Relay => relay(&query, &upstreams).await,
                Answer::Drop => None,
            };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

/// What to do with one query.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// A name under the cluster domain: this reply.
    Reply(Vec<u8>),
    /// Another name: ask the node's resolvers.
    Relay,
    /// Not a DNS query.
    Drop,
}

/// Decide about `query` from the Services and EndpointSlices.
pub fn answer(
    query: &[u8],
    domain: &str,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Answer {
    let Ok(request) = Message::from_bytes(query) else {
        return Answer::Drop;
    };
    let Some(question) = request.queries().first().cloned() else {
        return Answer::Drop;
    };
    let lookup = records::lookup(&question.name().to_ascii(), domain, services, slices);
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_query(question.clone());
    match lookup {
        Lookup::NotOurs => return Answer::Relay,
        Lookup::Missing => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
        Lookup::Found(ips) => {
            if question.query_type() == RecordType::A {
                for ip in ips {
                    reply.add_answer(Record::from_rdata(
                        question.name().clone(),
                        TTL,
                        RData::A(A(ip)),
                    ));
                }
            }
        }
    }
    reply.to_bytes().map_or(Answer::Drop, Answer::Reply)
}

/// Ask the node's resolvers; their first answer.
async fn relay(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let Ok(sock) = UdpSocket::bind(if upstream.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })
        .await
        else {
            continue;
        };
        if sock.send_to(query, upstream).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(RELAY_TIMEOUT, sock.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_bytes().unwrap()
    }

    fn web() -> Vec<Arc<Service>> {
        vec![Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20"}}))
            .unwrap(),
        )]
    }

    /// The reply to `name`/`kind` (which must be one).
    fn reply(name: &str, kind: RecordType) -> Message {
        match answer(&query(name, kind), "cluster.local", &web(), &[]) {
            Answer::Reply(bytes) => Message::from_bytes(&bytes).unwrap(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn cluster_names_are_answered_and_others_relayed() {
        let m = reply("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.id(), 7);
        assert_eq!(m.message_type(), MessageType::Response);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        let ips: Vec<String> = m.answers().iter().map(|r| r.data().to_string()).collect();
        assert_eq!(ips, ["10.43.0.20"]);
        // AAAA of an existing name: no error, no answer.
        let m = reply("web.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        assert_eq!(
            reply("nope.default.svc.cluster.local.", RecordType::A).response_code(),
            ResponseCode::NXDomain
        );
        let other = query("example.org.", RecordType::A);
        assert_eq!(answer(&other, "cluster.local", &web(), &[]), Answer::Relay);
        assert_eq!(answer(b"junk", "cluster.local", &web(), &[]), Answer::Drop);
    }
}
