//! One query, one decision (pure): a reply built from the Services and EndpointSlices
//! (`records.rs`, `srv.rs`, `reverse.rs`), or relay to the node's resolvers.
//!
//! As CoreDNS's `kubernetes` plugin (with k3s's Corefile, `kubernetes <domain> in-addr.arpa
//! ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa }`):
//!
//! - a name that exists without records of the asked type is NODATA (NOERROR, no answer,
//!   the zone's SOA in the authority section), never NXDOMAIN: stub resolvers ask A and
//!   AAAA together, and an NXDOMAIN on either fails the name;
//! - a name under the domain that does not exist is NXDOMAIN with the SOA (SERVFAIL until
//!   the watch caches have listed once, so nobody caches a false denial);
//! - an ExternalName Service is a CNAME; its target's records follow it in the same
//!   answer (stub resolvers do not chase CNAMEs themselves), from the caches when the
//!   target is a cluster name and from the node's resolvers otherwise (`Reply::chase`);
//! - reverse names of ClusterIPs and ready endpoints get PTR records; other addresses in
//!   the service CIDR are NXDOMAIN; everything else is relayed;
//! - a UDP answer larger than the client takes (512 bytes, or its EDNS size) keeps the
//!   records that fit and sets TC so that the client asks again over TCP (`encode`).

use super::records::{self, Lookup, Node};
use super::reverse;
use super::srv;
use super::{Ipv4Net, TTL};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::net::IpAddr;
use std::sync::Arc;

/// The TTL of `dns-version.<domain>` (CoreDNS's).
const VERSION_TTL: u32 = 28800;
/// How many CNAMEs a chain through cluster names may have (CoreDNS's).
const MAX_CHAIN: usize = 8;
/// The largest UDP answer sent, whatever size a client advertises.
pub const MAX_UDP: usize = 4096;
/// The UDP payload size this server advertises in its EDNS record.
const EDNS_SIZE: u16 = 4096;

/// What the server knows besides the objects.
#[derive(Clone, Copy, Debug)]
pub struct Zone<'a> {
    /// The cluster domain (`cluster.local`).
    pub domain: &'a str,
    /// The service CIDR: reverse names of unknown addresses in it are denied.
    pub service_net: Option<Ipv4Net>,
    /// The SOA serial (when the objects last changed).
    pub serial: u32,
    /// Whether the watch caches have listed the objects once.
    pub synced: bool,
}

/// What to do with one query.
#[derive(Debug)]
pub enum Answer {
    /// Answer (a cluster name).
    Reply(Box<Reply>),
    /// Another name: ask the node's resolvers.
    Relay,
    /// Not a DNS query.
    Drop,
}

/// A reply of this server.
#[derive(Debug)]
pub struct Reply {
    pub message: Message,
    /// The largest UDP answer the client takes (`encode`'s limit over UDP).
    pub udp_limit: usize,
    /// A name outside the cluster an ExternalName Service points at: ask the node's
    /// resolvers this and add their answers after the CNAME.
    pub chase: Option<Query>,
}

/// The start of the response to `request` (asking `question`).
fn response_to(request: &Message, question: &Query) -> Message {
    let mut message = Message::new();
    message
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled())
        .add_query(question.clone());
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_SIZE);
        message.set_edns(edns);
    }
    message
}

/// SERVFAIL for `query` (the node's resolvers did not answer it), at once rather than
/// after the client's timeout, as CoreDNS's `forward`.
pub fn server_failure(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_bytes(query).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    let question = request.queries().first()?;
    let mut message = response_to(&request, question);
    message.set_response_code(ResponseCode::ServFail);
    message.to_bytes().ok()
}

/// Decide about `query` from the Services and EndpointSlices.
pub fn answer(
    query: &[u8],
    zone: &Zone<'_>,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Answer {
    let Ok(request) = Message::from_bytes(query) else {
        return Answer::Drop;
    };
    if request.message_type() != MessageType::Query {
        return Answer::Drop;
    }
    let Some(question) = request.queries().first().cloned() else {
        return Answer::Drop;
    };
    let udp_limit = usize::from(request.max_payload()).min(MAX_UDP);
    let message = response_to(&request, &question);
    let mut reply = Reply {
        message,
        udp_limit,
        chase: None,
    };
    let qname = question.name().to_ascii();
    let qtype = question.query_type();
    let mut cx = Context {
        zone,
        services,
        slices,
        reply: &mut reply,
    };
    if let Some(rev) = reverse::parse(&qname) {
        return if cx.reverse(rev, question.name(), qtype) {
            Answer::Reply(Box::new(reply))
        } else {
            Answer::Relay
        };
    }
    let lookup = records::lookup(&qname, zone.domain, services, slices);
    if lookup == Lookup::NotOurs {
        return Answer::Relay;
    }
    cx.reply.message.set_authoritative(true);
    if request.op_code() != OpCode::Query {
        cx.reply.message.set_response_code(ResponseCode::NotImp);
        return Answer::Reply(Box::new(reply));
    }
    match lookup {
        Lookup::Found(node) => cx.found(question.name(), qtype, node, 0),
        _ => cx.missing(zone.domain),
    }
    Answer::Reply(Box::new(reply))
}

/// A reply being built.
struct Context<'a, 'r> {
    zone: &'a Zone<'a>,
    services: &'a [Arc<Service>],
    slices: &'a [Arc<EndpointSlice>],
    reply: &'r mut Reply,
}

impl Context<'_, '_> {
    fn message(&mut self) -> &mut Message {
        &mut self.reply.message
    }

    /// No such name under `zone`.
    fn missing(&mut self, zone: &str) {
        if !self.zone.synced {
            self.message().set_response_code(ResponseCode::ServFail);
            return;
        }
        self.message().set_response_code(ResponseCode::NXDomain);
        self.soa_authority(zone);
    }

    /// The name exists without records of the type asked (NODATA).
    fn no_data(&mut self, zone: &str) {
        self.soa_authority(zone);
    }

    fn soa_authority(&mut self, zone: &str) {
        if let Some(soa) = soa(zone, self.zone.serial) {
            self.message().add_name_server(soa);
        }
    }

    /// A reverse name; false if it is the node's resolvers' to answer.
    fn reverse(&mut self, rev: reverse::Reverse, owner: &Name, qtype: RecordType) -> bool {
        let Some(ip) = rev.addr else {
            return false;
        };
        let names = reverse::ptr(ip, self.zone.domain, self.services, self.slices);
        if names.is_empty() {
            let ours = match (ip, self.zone.service_net) {
                (IpAddr::V4(v4), Some(net)) => net.contains(v4),
                _ => false,
            };
            if !ours {
                return false;
            }
            self.message().set_authoritative(true);
            self.missing(rev.zone);
            return true;
        }
        self.message().set_authoritative(true);
        if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            for name in names {
                if let Ok(target) = Name::from_ascii(&name) {
                    self.message().add_answer(Record::from_rdata(
                        owner.clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                }
            }
        } else {
            self.no_data(rev.zone);
        }
        true
    }

    /// The records of type `qtype` of the existing name `owner`.
    fn found(&mut self, owner: &Name, qtype: RecordType, node: Node, depth: usize) {
        if let Some(target) = node.cname {
            self.alias(owner, qtype, &target, depth);
            return;
        }
        let domain = self.zone.domain.trim_end_matches('.');
        let apex = owner
            .to_ascii()
            .trim_end_matches('.')
            .eq_ignore_ascii_case(domain);
        let before = self.message().answers().len();
        if matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY) {
            for ip in &node.addrs {
                if qtype == RecordType::ANY || qtype == family(ip) {
                    self.message().add_answer(address(owner.clone(), *ip));
                }
            }
        }
        if matches!(qtype, RecordType::TXT | RecordType::ANY) {
            for text in &node.txt {
                self.message().add_answer(Record::from_rdata(
                    owner.clone(),
                    VERSION_TTL,
                    RData::TXT(TXT::new(vec![text.clone()])),
                ));
            }
        }
        match qtype {
            RecordType::SRV => self.srv(owner, &node.srv),
            RecordType::SOA if apex => {
                if let Some(soa) = soa(domain, self.zone.serial) {
                    self.message().add_answer(soa);
                }
            }
            RecordType::NS if apex => self.ns(owner, domain),
            _ => {}
        }
        if self.message().answers().len() == before {
            self.no_data(domain);
        }
    }

    /// SRV records, their targets' addresses in the additional section.
    fn srv(&mut self, owner: &Name, records: &[srv::Srv]) {
        let weight = srv::weight(records.len());
        let mut extra: Vec<(String, IpAddr)> = Vec::new();
        for record in records {
            let Ok(target) = Name::from_ascii(&record.target) else {
                continue;
            };
            self.message().add_answer(Record::from_rdata(
                owner.clone(),
                TTL,
                RData::SRV(SRV::new(0, weight, record.port, target.clone())),
            ));
            for ip in &record.addrs {
                let key = (record.target.clone(), *ip);
                if !extra.contains(&key) {
                    extra.push(key);
                    self.message().add_additional(address(target.clone(), *ip));
                }
            }
        }
    }

    /// The zone's name server: `ns.dns.<domain>`, at the `kube-dns` ClusterIP.
    fn ns(&mut self, owner: &Name, domain: &str) {
        let host = format!("ns.dns.{domain}.");
        let Ok(target) = Name::from_ascii(&host) else {
            return;
        };
        self.message().add_answer(Record::from_rdata(
            owner.clone(),
            TTL,
            RData::NS(NS(target.clone())),
        ));
        if let Lookup::Found(node) = records::lookup(&host, domain, self.services, self.slices) {
            for ip in node.addrs {
                self.message().add_additional(address(target.clone(), ip));
            }
        }
    }

    /// An alias (an ExternalName Service): the CNAME, then the target's records.
    fn alias(&mut self, owner: &Name, qtype: RecordType, target: &str, depth: usize) {
        let Ok(target) = Name::from_ascii(format!("{}.", target.trim_end_matches('.'))) else {
            self.no_data(self.zone.domain);
            return;
        };
        if depth >= MAX_CHAIN || target.to_ascii().eq_ignore_ascii_case(&owner.to_ascii()) {
            // A loop: the name has nothing to give.
            self.message().set_response_code(ResponseCode::ServFail);
            return;
        }
        self.message().add_answer(Record::from_rdata(
            owner.clone(),
            TTL,
            RData::CNAME(CNAME(target.clone())),
        ));
        if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return;
        }
        let ascii = target.to_ascii();
        if reverse::parse(&ascii).is_some() {
            self.reply.chase = Some(Query::query(target, qtype));
            return;
        }
        match records::lookup(&ascii, self.zone.domain, self.services, self.slices) {
            Lookup::Found(node) => self.found(&target, qtype, node, depth + 1),
            Lookup::Missing => self.missing(self.zone.domain),
            Lookup::NotOurs => self.reply.chase = Some(Query::query(target, qtype)),
        }
    }
}

fn family(ip: &IpAddr) -> RecordType {
    match ip {
        IpAddr::V4(_) => RecordType::A,
        IpAddr::V6(_) => RecordType::AAAA,
    }
}

fn address(owner: Name, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, TTL, data)
}

/// The SOA record of `zone` (CoreDNS's: `ns.dns.<zone>`, `hostmaster.<zone>`, the TTL as
/// the negative-caching time).
fn soa(zone: &str, serial: u32) -> Option<Record> {
    let zone = zone.trim_end_matches('.');
    let owner = Name::from_ascii(format!("{zone}.")).ok()?;
    let mname = Name::from_ascii(format!("ns.dns.{zone}.")).ok()?;
    let rname = Name::from_ascii(format!("hostmaster.{zone}.")).ok()?;
    Some(Record::from_rdata(
        owner,
        TTL.min(300),
        RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL)),
    ))
}

/// The wire form of `message` in at most `limit` bytes: records that do not fit are left
/// out (additional ones first), and TC is set if answer or authority records were.
pub fn encode(mut message: Message, limit: usize) -> Option<Vec<u8>> {
    let whole = message.to_bytes().ok()?;
    if whole.len() <= limit {
        return Some(whole);
    }
    let answers = message.take_answers();
    let authority = message.take_name_servers();
    let additional = message.take_additionals();
    let fits = |m: &Message| m.to_bytes().map(|b| b.len() <= limit).unwrap_or(false);
    let mut truncated = false;
    for record in answers {
        message.add_answer(record);
        if !fits(&message) {
            message.answers_mut().pop();
            truncated = true;
            break;
        }
    }
    if !truncated {
        for record in authority {
            message.add_name_server(record);
            if !fits(&message) {
                message.name_servers_mut().pop();
                truncated = true;
                break;
            }
        }
    }
    if !truncated {
        for record in additional {
            message.add_additional(record);
            if !fits(&message) {
                message.additionals_mut().pop();
                break;
            }
        }
    }
    message.set_truncated(truncated);
    message.to_bytes().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::tests::{services, slices};
    use hickory_proto::rr::DNSClass;
    use serde_json::json;

    pub const ZONE: Zone<'static> = Zone {
        domain: "cluster.local",
        service_net: Some(Ipv4Net {
            network: std::net::Ipv4Addr::new(10, 43, 0, 0),
            prefix: 16,
        }),
        serial: 42,
        synced: true,
    };

    pub fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_bytes().unwrap()
    }

    fn ask_in(zone: &Zone<'_>, name: &str, kind: RecordType) -> Reply {
        match answer(&query(name, kind), zone, &services(), &slices()) {
            Answer::Reply(reply) => *reply,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// The reply to `name`/`kind` (which must be one), through its wire form.
    fn ask(name: &str, kind: RecordType) -> Message {
        let reply = ask_in(&ZONE, name, kind);
        assert!(reply.chase.is_none(), "{name}");
        Message::from_bytes(&encode(reply.message, 65535).unwrap()).unwrap()
    }

    fn data(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.data().to_string()).collect()
    }

    fn assert_soa(m: &Message, zone: &str) {
        let soa = m.name_servers();
        assert_eq!(soa.len(), 1, "{m:?}");
        assert_eq!(soa[0].record_type(), RecordType::SOA);
        assert_eq!(soa[0].name().to_ascii(), zone);
        assert_eq!(soa[0].ttl(), 5);
        let RData::SOA(soa) = soa[0].data() else {
            panic!("{soa:?}");
        };
        assert_eq!(soa.mname().to_ascii(), format!("ns.dns.{zone}"));
        assert_eq!(soa.rname().to_ascii(), format!("hostmaster.{zone}"));
        assert_eq!((soa.serial(), soa.minimum()), (42, 5));
    }

    #[test]
    fn addresses_of_services_with_the_cluster_ttl() {
        let m = ask("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(m.id(), 7);
        assert_eq!(m.message_type(), MessageType::Response);
        assert!(m.authoritative() && m.recursion_available() && m.recursion_desired());
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(data(m.answers()), ["10.43.0.20"]);
        assert_eq!(m.answers()[0].ttl(), 5);
        assert_eq!(m.answers()[0].dns_class(), DNSClass::IN);
        // The owner keeps the query's case.
        let m = ask("Web.Default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            m.answers()[0].name().to_ascii(),
            "Web.Default.svc.cluster.local."
        );
        // Dual-stack: AAAA answers the IPv6 ClusterIP, A the IPv4 one.
        let m = ask("dual.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(data(m.answers()), ["fd00:43::30"]);
        let m = ask("dual.default.svc.cluster.local.", RecordType::A);
        assert_eq!(data(m.answers()), ["10.43.0.30"]);
        let m = ask("db.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(data(m.answers()), ["10.42.0.7", "10.42.0.9"]);
    }

    #[test]
    fn existing_names_without_such_records_are_nodata() {
        for kind in [
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::MX,
            RecordType::CAA,
            RecordType::PTR,
        ] {
            for name in [
                "web.default.svc.cluster.local.",
                "db.prod.svc.cluster.local.",
                "db-0.db.prod.svc.cluster.local.",
                "default.svc.cluster.local.",
                "10-42-0-7.prod.pod.cluster.local.",
            ] {
                let m = ask(name, kind);
                assert_eq!(m.response_code(), ResponseCode::NoError, "{name} {kind}");
                assert!(m.answers().is_empty(), "{name} {kind}");
                assert_soa(&m, "cluster.local.");
            }
        }
        // No such name: NXDOMAIN, whatever the type, with the SOA.
        for kind in [RecordType::A, RecordType::AAAA, RecordType::SRV] {
            let m = ask("nope.default.svc.cluster.local.", kind);
            assert_eq!(m.response_code(), ResponseCode::NXDomain);
            assert!(m.answers().is_empty());
            assert_soa(&m, "cluster.local.");
        }
        let m = ask("empty.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn before_the_caches_listed_denials_are_server_failures() {
        let zone = Zone {
            synced: false,
            ..ZONE
        };
        let m = ask_in(&zone, "nope.default.svc.cluster.local.", RecordType::A).message;
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        let m = ask_in(&zone, "web.default.svc.cluster.local.", RecordType::A).message;
        assert_eq!(m.response_code(), ResponseCode::NoError);
    }

    #[test]
    fn srv_of_cluster_ip_and_headless_services() {
        let m = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            data(m.answers()),
            ["0 100 80 web.default.svc.cluster.local."]
        );
        assert_eq!(m.answers()[0].ttl(), 5);
        assert_eq!(
            m.additionals()
                .iter()
                .map(|r| format!("{} {}", r.name(), r.data()))
                .collect::<Vec<_>>(),
            ["web.default.svc.cluster.local. 10.43.0.20"]
        );
        // Every port for the Service's own name; the target's address once.
        let m = ask("web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            data(m.answers()),
            [
                "0 50 80 web.default.svc.cluster.local.",
                "0 50 53 web.default.svc.cluster.local."
            ]
        );
        assert_eq!(data(m.additionals()), ["10.43.0.20"]);
        // Headless: one per ready endpoint, the endpoints' addresses as additional data.
        let m = ask("_pg._tcp.db.prod.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            data(m.answers()),
            [
                "0 50 5433 db-0.db.prod.svc.cluster.local.",
                "0 50 5433 10-42-0-9.db.prod.svc.cluster.local."
            ]
        );
        assert_eq!(
            m.additionals()
                .iter()
                .map(|r| format!("{} {}", r.name(), r.data()))
                .collect::<Vec<_>>(),
            [
                "db-0.db.prod.svc.cluster.local. 10.42.0.7",
                "10-42-0-9.db.prod.svc.cluster.local. 10.42.0.9"
            ]
        );
        // Those targets resolve.
        let m = ask("10-42-0-9.db.prod.svc.cluster.local.", RecordType::A);
        assert_eq!(data(m.answers()), ["10.42.0.9"]);
        // An unknown port is no name; A of a port's name is the Service's address.
        let m = ask("_nope._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        let m = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(data(m.answers()), ["10.43.0.20"]);
        // The cluster DNS's own ports.
        let m = ask(
            "_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            data(m.answers()),
            ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
        );
    }

    #[test]
    fn reverse_lookups() {
        let m = ask("20.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.authoritative());
        assert_eq!(data(m.answers()), ["web.default.svc.cluster.local."]);
        assert_eq!(m.answers()[0].ttl(), 5);
        let m = ask("7.0.42.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(data(m.answers()), ["db-0.db.prod.svc.cluster.local."]);
        let m = ask(&reverse::tests::name_of("fd00:43::30"), RecordType::PTR);
        assert_eq!(data(m.answers()), ["dual.default.svc.cluster.local."]);
        // A known address asked another type: NODATA.
        let m = ask("20.0.43.10.in-addr.arpa.", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        assert_soa(&m, "in-addr.arpa.");
        // Unknown in the service CIDR: NXDOMAIN.
        let m = ask("99.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_soa(&m, "in-addr.arpa.");
        // Elsewhere (a not-ready pod, the internet, networks' names): the node's resolvers.
        for name in [
            "8.0.42.10.in-addr.arpa.",
            "8.8.8.8.in-addr.arpa.",
            "43.10.in-addr.arpa.",
            reverse::tests::name_of("fd00::1").as_str(),
        ] {
            let q = query(name, RecordType::PTR);
            assert!(
                matches!(answer(&q, &ZONE, &services(), &slices()), Answer::Relay),
                "{name}"
            );
        }
        // Without a known service CIDR, unknown addresses are relayed (CoreDNS's fallthrough).
        let zone = Zone {
            service_net: None,
            ..ZONE
        };
        let q = query("99.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert!(matches!(
            answer(&q, &zone, &services(), &slices()),
            Answer::Relay
        ));
    }

    #[test]
    fn external_names_are_cnames() {
        // Outside the cluster: the CNAME, and the target to ask the node's resolvers.
        let reply = ask_in(&ZONE, "ext.default.svc.cluster.local.", RecordType::A);
        let m = &reply.message;
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(data(m.answers()), ["www.example.com."]);
        assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
        assert_eq!(m.answers()[0].ttl(), 5);
        let chase = reply.chase.expect("a target to chase");
        assert_eq!(chase.name().to_ascii(), "www.example.com.");
        assert_eq!(chase.query_type(), RecordType::A);
        // A CNAME query is the CNAME alone.
        let reply = ask_in(&ZONE, "ext.default.svc.cluster.local.", RecordType::CNAME);
        assert!(reply.chase.is_none());
        assert_eq!(data(reply.message.answers()), ["www.example.com."]);
        // Inside the cluster: followed here.
        let m = ask("alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            m.answers()
                .iter()
                .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
                .collect::<Vec<_>>(),
            [
                "alias.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. A 10.43.0.20"
            ]
        );
        let m = ask("alias.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(m.answers().len(), 1);
        assert_soa(&m, "cluster.local.");
    }

    #[test]
    fn cname_loops_end() {
        let mut s = services();
        s.push(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "loop", "namespace": "default"},
                "spec": {"type": "ExternalName",
                         "externalName": "loop.default.svc.cluster.local"}}))
            .unwrap(),
        ));
        let q = query("loop.default.svc.cluster.local.", RecordType::A);
        let Answer::Reply(reply) = answer(&q, &ZONE, &s, &slices()) else {
            panic!()
        };
        assert_eq!(reply.message.response_code(), ResponseCode::ServFail);
    }

    #[test]
    fn pods_and_zone_records() {
        let m = ask("10-42-0-7.prod.pod.cluster.local.", RecordType::A);
        assert_eq!(data(m.answers()), ["10.42.0.7"]);
        let m = ask("10-42-0.prod.pod.cluster.local.", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        let m = ask("dns-version.cluster.local.", RecordType::TXT);
        assert_eq!(data(m.answers()), ["1.1.0"]);
        let m = ask("cluster.local.", RecordType::SOA);
        assert_eq!(m.answers()[0].record_type(), RecordType::SOA);
        let m = ask("cluster.local.", RecordType::NS);
        assert_eq!(data(m.answers()), ["ns.dns.cluster.local."]);
        assert_eq!(data(m.additionals()), ["10.43.0.10"]);
        let m = ask("cluster.local.", RecordType::A);
        assert!(m.answers().is_empty());
        assert_soa(&m, "cluster.local.");
    }

    #[test]
    fn other_names_are_relayed_and_junk_dropped() {
        let q = query("example.org.", RecordType::A);
        assert!(matches!(
            answer(&q, &ZONE, &services(), &slices()),
            Answer::Relay
        ));
        assert!(matches!(
            answer(b"junk", &ZONE, &services(), &slices()),
            Answer::Drop
        ));
        // Responses are not answered (no loops).
        let mut m = Message::from_bytes(&q).unwrap();
        m.set_message_type(MessageType::Response);
        assert!(matches!(
            answer(&m.to_bytes().unwrap(), &ZONE, &services(), &slices()),
            Answer::Drop
        ));
    }

    #[test]
    fn failed_relays_are_server_failures() {
        let bytes = server_failure(&query("example.org.", RecordType::A)).unwrap();
        let m = Message::from_bytes(&bytes).unwrap();
        assert_eq!((m.id(), m.response_code()), (7, ResponseCode::ServFail));
        assert_eq!(m.message_type(), MessageType::Response);
        assert_eq!(m.queries()[0].name().to_ascii(), "example.org.");
        assert_eq!(server_failure(b"junk"), None);
        assert_eq!(server_failure(&bytes), None);
    }

    /// A headless Service with `n` ready endpoints.
    fn big(n: u8) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
        let svc = json!({"metadata": {"name": "big", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}});
        let endpoints: Vec<_> = (1..=n)
            .map(|i| json!({"addresses": [format!("10.42.1.{i}")], "hostname": format!("big-{i}")}))
            .collect();
        let slice = json!({
            "metadata": {"name": "big-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "big"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": endpoints
        });
        (
            vec![Arc::new(serde_json::from_value(svc).unwrap())],
            vec![Arc::new(serde_json::from_value(slice).unwrap())],
        )
    }

    #[test]
    fn large_udp_answers_are_truncated() {
        let (s, e) = big(60);
        let q = query("big.default.svc.cluster.local.", RecordType::A);
        let Answer::Reply(reply) = answer(&q, &ZONE, &s, &e) else {
            panic!()
        };
        assert_eq!(reply.udp_limit, 512);
        let full = encode(reply.message.clone(), 65535).unwrap();
        assert!(full.len() > 512);
        let m = Message::from_bytes(&full).unwrap();
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 60);
        let cut = encode(reply.message, reply.udp_limit).unwrap();
        assert!(cut.len() <= 512, "{}", cut.len());
        let m = Message::from_bytes(&cut).unwrap();
        assert!(m.truncated());
        assert!(!m.answers().is_empty() && m.answers().len() < 60);
        // EDNS raises the limit (and is answered with EDNS).
        let mut with_edns = Message::from_bytes(&q).unwrap();
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        with_edns.set_edns(edns);
        let Answer::Reply(reply) = answer(&with_edns.to_bytes().unwrap(), &ZONE, &s, &e) else {
            panic!()
        };
        assert_eq!(reply.udp_limit, 1232);
        let m = Message::from_bytes(&encode(reply.message, reply.udp_limit).unwrap()).unwrap();
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 60);
        assert_eq!(m.extensions().as_ref().map(Edns::max_payload), Some(4096));
        // SRV with many targets: the additional addresses go first, without TC.
        let (s, e) = big(12);
        let q = query("_http._tcp.big.default.svc.cluster.local.", RecordType::SRV);
        let Answer::Reply(reply) = answer(&q, &ZONE, &s, &e) else {
            panic!()
        };
        let mut bare = reply.message.clone();
        assert_eq!(bare.take_additionals().len(), 12);
        let limit = bare.to_bytes().unwrap().len() + 120;
        let m = Message::from_bytes(&encode(reply.message, limit).unwrap()).unwrap();
        assert_eq!(m.answers().len(), 12);
        assert!(!m.additionals().is_empty() && m.additionals().len() < 12);
        assert!(!m.truncated());
    }
}
