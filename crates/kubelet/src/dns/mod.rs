//! Cluster DNS (what CoreDNS does in a cluster): pods' `nameserver` is the `kube-dns`
//! Service's ClusterIP, which the service proxy sends to this server on the node's pod
//! bridge gateway, over UDP and TCP (`tcp.rs`) on port 53. Names under the cluster domain
//! and reverse names of cluster addresses are answered from Services and EndpointSlices
//! (`answer.rs`: `records.rs` for names, `srv.rs` for SRV records, `reverse.rs` for PTR
//! records); other names are relayed to the node's own resolvers.
//!
//! Records live [`TTL`] seconds: k3s's Corefile sets no `ttl` in its `kubernetes` block,
//! so CoreDNS's default of 5 s applies (kubeadm's Corefile says `ttl 30`).

pub mod answer;
pub mod records;
pub mod reverse;
pub mod srv;
mod tcp;

use answer::{Answer, Zone};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;

/// Answers are cached by clients for this long (CoreDNS's default, which k3s keeps).
pub const TTL: u32 = 5;
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

/// An IPv4 network, `10.43.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    fn mask(&self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network) & self.mask()
    }

    /// The service CIDR guessed from the `kube-dns` ClusterIP when none is given: the /16
    /// around it (k3s's default size; the address is the CIDR's tenth).
    pub fn around(ip: Ipv4Addr) -> Ipv4Net {
        let net = Ipv4Net {
            network: ip,
            prefix: 16,
        };
        Ipv4Net {
            network: Ipv4Addr::from(u32::from(ip) & net.mask()),
            prefix: 16,
        }
    }
}

impl std::str::FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (net, bits) = s.split_once('/').ok_or_else(|| format!("{s}: no prefix"))?;
        let network = net.parse().map_err(|e| format!("{s}: {e}"))?;
        let prefix = bits
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s}: bad prefix"))?;
        Ok(Ipv4Net { network, prefix })
    }
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

/// The `kube-dns` Service (fixed ClusterIP, no selector; UDP and TCP port 53, as k3s's)
/// and its EndpointSlice naming this server, applied server-side so an admin's other
/// fields survive.
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
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
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
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
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

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// Serve until the process ends (logging why if it cannot start). Reverse names of
/// unknown addresses in `service_cidr` are denied here rather than relayed; without it,
/// the /16 around the `kube-dns` ClusterIP.
pub async fn run(client: kube::Client, cfg: DnsConfig, service_cidr: Option<Ipv4Net>) {
    let gateway = bridge_gateway(&client, &cfg.node_name).await;
    let addr = SocketAddr::new(IpAddr::V4(gateway), 53);
    let socket = match bind_early(addr) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::warn!("cluster DNS cannot listen on {addr}: {e}");
            return;
        }
    };
    let listener = match tcp::bind_early(addr) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("cluster DNS cannot listen on TCP {addr}: {e}");
            None
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
    let services = crate::mirror::spawned(Api::<Service>::all(client.clone()), changed.clone());
    let slices = crate::mirror::spawned(Api::<EndpointSlice>::all(client), changed.clone());
    let upstreams: Vec<SocketAddr> = crate::pod::sandbox::parse_resolv_conf(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    )
    .0
    .iter()
    .filter_map(|n| n.parse::<IpAddr>().ok())
    .map(|ip| SocketAddr::new(ip, 53))
    .collect();
    let server = Arc::new(Server {
        services,
        slices,
        upstreams,
        domain: cfg.domain.clone(),
        service_net: Some(service_cidr.unwrap_or_else(|| Ipv4Net::around(cfg.cluster_ip))),
        serial: AtomicU32::new(unix_now()),
        synced: AtomicBool::new(false),
    });
    // Denials wait for the first listing; the SOA serial follows changes.
    tokio::spawn({
        let server = server.clone();
        async move {
            if server.services.wait_until_ready().await.is_ok()
                && server.slices.wait_until_ready().await.is_ok()
            {
                server.synced.store(true, Ordering::Relaxed);
            }
        }
    });
    tokio::spawn({
        let server = server.clone();
        async move {
            loop {
                changed.notified().await;
                server.serial.store(unix_now(), Ordering::Relaxed);
            }
        }
    });
    if let Some(listener) = listener {
        tokio::spawn(tcp::serve(listener, server.clone()));
    }
    serve_udp(socket, server).await;
}

/// What a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// The server's state, shared by the UDP and TCP listeners.
struct Server {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    /// The node's resolvers.
    upstreams: Vec<SocketAddr>,
    domain: String,
    service_net: Option<Ipv4Net>,
    serial: AtomicU32,
    synced: AtomicBool,
}

impl Server {
    /// The reply to one query, if any.
    async fn respond(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let zone = Zone {
            domain: &self.domain,
            service_net: self.service_net,
            serial: self.serial.load(Ordering::Relaxed),
            synced: self.synced.load(Ordering::Relaxed),
        };
        let decision = answer::answer(query, &zone, &self.services.state(), &self.slices.state());
        match decision {
            Answer::Reply(mut reply) => {
                if let Some(target) = reply.chase.take() {
                    self.chase(&mut reply.message, target).await;
                }
                let limit = match transport {
                    Transport::Udp => reply.udp_limit,
                    Transport::Tcp => usize::from(u16::MAX),
                };
                answer::encode(reply.message, limit)
            }
            Answer::Relay => match relay(query, &self.upstreams, transport).await {
                Some(reply) => Some(reply),
                None => answer::server_failure(query),
            },
            Answer::Drop => None,
        }
    }

    /// Add the node's resolvers' answer to `target` after an ExternalName's CNAME (as
    /// CoreDNS does through its upstream: stub resolvers do not follow CNAMEs).
    async fn chase(&self, message: &mut Message, target: Query) {
        let id: u16 = rand::random();
        let mut request = Message::new();
        request
            .set_id(id)
            .set_recursion_desired(true)
            .add_query(target);
        let Ok(bytes) = request.to_bytes() else {
            return;
        };
        let Some(reply) = relay(&bytes, &self.upstreams, Transport::Udp).await else {
            return;
        };
        let Ok(mut found) = Message::from_bytes(&reply) else {
            return;
        };
        if found.truncated()
            && let Some(reply) = relay(&bytes, &self.upstreams, Transport::Tcp).await
            && let Ok(whole) = Message::from_bytes(&reply)
        {
            found = whole;
        }
        if found.id() != id || found.message_type() != MessageType::Response {
            return;
        }
        if found.response_code() == ResponseCode::NXDomain {
            message.set_response_code(ResponseCode::NXDomain);
        }
        message.add_answers(found.take_answers());
    }
}

/// Answer datagrams until the socket fails.
async fn serve_udp(socket: Arc<UdpSocket>, server: Arc<Server>) {
    let mut buf = vec![0u8; answer::MAX_UDP];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (socket, server) = (socket.clone(), server.clone());
        tokio::spawn(async move {
            if let Some(reply) = server.respond(&query, Transport::Udp).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

/// Ask the node's resolvers, over the transport the client used (TCP falling back to
/// UDP); their first answer.
async fn relay(query: &[u8], upstreams: &[SocketAddr], transport: Transport) -> Option<Vec<u8>> {
    if transport == Transport::Tcp {
        for upstream in upstreams {
            if let Some(reply) = tcp::exchange(*upstream, query, RELAY_TIMEOUT).await {
                return Some(reply);
            }
        }
    }
    for upstream in upstreams {
        if let Some(reply) = relay_udp(*upstream, query).await {
            return Some(reply);
        }
    }
    None
}

/// One exchange with one resolver over UDP: the first datagram from it with the query's
/// ID.
async fn relay_udp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local = if upstream.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.connect(upstream).await.ok()?;
    sock.send(query).await.ok()?;
    let id = query.get(..2)?;
    let mut buf = vec![0u8; 65535];
    tokio::time::timeout(RELAY_TIMEOUT, async {
        loop {
            let n = sock.recv(&mut buf).await.ok()?;
            if buf.get(..2) == Some(id) {
                return Some(buf[..n].to_vec());
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::tests::{services, slices};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    fn query(name: &str, kind: RecordType, id: u16) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_bytes().unwrap()
    }

    #[test]
    fn networks() {
        let net: Ipv4Net = "10.43.0.0/16".parse().unwrap();
        assert!(net.contains("10.43.255.1".parse().unwrap()));
        assert!(!net.contains("10.42.0.1".parse().unwrap()));
        assert_eq!(Ipv4Net::around("10.43.0.10".parse().unwrap()), net);
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one: Ipv4Net = "10.0.0.1/32".parse().unwrap();
        assert!(one.contains("10.0.0.1".parse().unwrap()));
        assert!(!one.contains("10.0.0.2".parse().unwrap()));
        assert!("10.0.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
    }

    /// A resolver answering every question with `A 192.0.2.1`, over UDP and TCP on one
    /// port.
    async fn fake_upstream() -> SocketAddr {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        fn reply(query: &[u8]) -> Vec<u8> {
            let q = Message::from_bytes(query).unwrap();
            let mut m = Message::new();
            m.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true);
            let question = q.queries()[0].clone();
            m.add_answer(Record::from_rdata(
                question.name().clone(),
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ));
            m.add_query(question);
            m.to_bytes().unwrap()
        }
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, from) = udp.recv_from(&mut buf).await.unwrap();
                udp.send_to(&reply(&buf[..n]), from).await.unwrap();
            }
        });
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tcp.accept().await.unwrap();
                tokio::spawn(async move {
                    while let Ok(q) = tcp::read_frame(&mut stream).await {
                        tcp::write_frame(&mut stream, &reply(&q)).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    /// A server over the test objects (and 60 endpoints of headless `big`), listening on
    /// UDP and TCP on 127.0.0.1; their addresses.
    async fn start() -> (SocketAddr, SocketAddr) {
        start_with(fake_upstream().await).await
    }

    async fn start_with(upstream: SocketAddr) -> (SocketAddr, SocketAddr) {
        let (services_store, mut w) = reflector::store::<Service>();
        let mut all = services();
        all.push(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "big", "namespace": "default"},
                "spec": {"clusterIP": "None"}}))
            .unwrap(),
        ));
        for s in all {
            w.apply_watcher_event(&Event::Apply((*s).clone()));
        }
        let (slices_store, mut w2) = reflector::store::<EndpointSlice>();
        let endpoints: Vec<_> = (1..=60)
            .map(|i| json!({"addresses": [format!("10.42.1.{i}")]}))
            .collect();
        let mut all = slices();
        all.push(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "big-1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "big"}},
                "addressType": "IPv4", "endpoints": endpoints}))
            .unwrap(),
        ));
        for s in all {
            w2.apply_watcher_event(&Event::Apply((*s).clone()));
        }
        let server = Arc::new(Server {
            services: services_store,
            slices: slices_store,
            upstreams: vec![upstream],
            domain: "cluster.local".into(),
            service_net: "10.43.0.0/16".parse().ok(),
            serial: AtomicU32::new(1),
            synced: AtomicBool::new(true),
        });
        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = (udp.local_addr().unwrap(), listener.local_addr().unwrap());
        tokio::spawn(serve_udp(udp, server.clone()));
        tokio::spawn(tcp::serve(listener, server));
        addrs
    }

    async fn over_udp(server: SocketAddr, q: &[u8]) -> Message {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(q, server).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_bytes(&buf[..n]).unwrap()
    }

    fn data(m: &Message) -> Vec<String> {
        m.answers().iter().map(|r| r.data().to_string()).collect()
    }

    #[tokio::test]
    async fn udp_answers_relays_and_chases() {
        let (udp, _) = start().await;
        let m = over_udp(
            udp,
            &query("web.default.svc.cluster.local.", RecordType::A, 1),
        )
        .await;
        assert_eq!((m.id(), data(&m)), (1, vec!["10.43.0.20".to_string()]));
        let m = over_udp(
            udp,
            &query("web.default.svc.cluster.local.", RecordType::AAAA, 2),
        )
        .await;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        let m = over_udp(udp, &query("example.org.", RecordType::A, 3)).await;
        assert_eq!((m.id(), data(&m)), (3, vec!["192.0.2.1".to_string()]));
        // An ExternalName: the CNAME, then the node's resolvers' answer for the target.
        let m = over_udp(
            udp,
            &query("ext.default.svc.cluster.local.", RecordType::A, 4),
        )
        .await;
        assert_eq!(m.id(), 4);
        assert_eq!(
            m.answers()
                .iter()
                .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
                .collect::<Vec<_>>(),
            [
                "ext.default.svc.cluster.local. CNAME www.example.com.",
                "www.example.com. A 192.0.2.1"
            ]
        );
        // A reverse name outside the cluster is relayed.
        let m = over_udp(udp, &query("1.2.0.192.in-addr.arpa.", RecordType::PTR, 5)).await;
        assert_eq!(data(&m), ["192.0.2.1"]);
    }

    #[tokio::test]
    async fn unanswered_relays_fail_at_once() {
        // Nothing listens there: the resolver refuses at once (ICMP), and so do we.
        let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = closed.local_addr().unwrap();
        drop(closed);
        let (udp, _) = start_with(upstream).await;
        let m = over_udp(udp, &query("example.org.", RecordType::A, 5)).await;
        assert_eq!((m.id(), m.response_code()), (5, ResponseCode::ServFail));
        // Cluster names do not need it.
        let m = over_udp(
            udp,
            &query("web.default.svc.cluster.local.", RecordType::A, 6),
        )
        .await;
        assert_eq!(data(&m), ["10.43.0.20"]);
    }

    #[tokio::test]
    async fn truncated_over_udp_whole_over_tcp() {
        let (udp, tcp_addr) = start().await;
        let q = query("big.default.svc.cluster.local.", RecordType::A, 9);
        let m = over_udp(udp, &q).await;
        assert!(m.truncated());
        assert!(m.answers().len() < 60);
        let mut stream = TcpStream::connect(tcp_addr).await.unwrap();
        // Two queries in one write (pipelined), answered in order on one connection.
        let q2 = query("example.org.", RecordType::A, 10);
        let mut both = Vec::new();
        for q in [&q, &q2] {
            both.extend_from_slice(&u16::try_from(q.len()).unwrap().to_be_bytes());
            both.extend_from_slice(q);
        }
        stream.write_all(&both).await.unwrap();
        let m = Message::from_bytes(&tcp::read_frame(&mut stream).await.unwrap()).unwrap();
        assert_eq!(m.id(), 9);
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 60);
        // Relayed over TCP too.
        let m = Message::from_bytes(&tcp::read_frame(&mut stream).await.unwrap()).unwrap();
        assert_eq!((m.id(), data(&m)), (10, vec!["192.0.2.1".to_string()]));
        // The same answers as over UDP.
        tcp::write_frame(
            &mut stream,
            &query(
                "_http._tcp.web.default.svc.cluster.local.",
                RecordType::SRV,
                11,
            ),
        )
        .await
        .unwrap();
        let m = Message::from_bytes(&tcp::read_frame(&mut stream).await.unwrap()).unwrap();
        assert_eq!(data(&m), ["0 100 80 web.default.svc.cluster.local."]);
    }
}
