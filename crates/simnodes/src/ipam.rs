//! Fake addresses from a node's *global* index i (its group's claimed base + its number in
//! the group, so groups side by side never share addresses): InternalIP `10.200.x.y`
//! (x.y = i+1) and pod range `10.(128 + i/256).(i%256).0/24`, so 32,768 nodes fit without
//! overlap.

use std::net::Ipv4Addr;

/// Usable pod addresses in a /24 (.1 … .254).
pub const MAX_PODS_PER_NODE: u32 = 254;

/// The InternalIP of node `index`.
pub fn node_ip(index: usize) -> Ipv4Addr {
    let n = index + 1;
    Ipv4Addr::new(10, 200, ((n >> 8) & 0xff) as u8, (n & 0xff) as u8)
}

/// The pod CIDR of node `index`.
pub fn pod_cidr(index: usize) -> String {
    let (a, b) = subnet(index);
    format!("10.{a}.{b}.0/24")
}

fn subnet(index: usize) -> (u8, u8) {
    (128 + ((index >> 8) & 0x7f) as u8, (index & 0xff) as u8)
}

/// Which host numbers of one node's /24 are in use.
#[derive(Debug, Clone)]
pub struct NodeIps {
    /// The node's pod range, `10.a.b.0/24`.
    subnet: (u8, u8),
    used: [u64; 4],
}

impl NodeIps {
    /// The pool of the node with global index `index`.
    pub fn new(index: usize) -> Self {
        NodeIps {
            subnet: subnet(index),
            used: [0; 4],
        }
    }

    /// Take the lowest free address.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let host = (1..=MAX_PODS_PER_NODE as usize).find(|h| !self.is_used(*h))?;
        self.used[host / 64] |= 1 << (host % 64);
        let (a, b) = self.subnet;
        Some(Ipv4Addr::new(10, a, b, host as u8))
    }

    /// Mark `ip` as used (a pod that already had it, e.g. after a restart).
    pub fn claim(&mut self, ip: Ipv4Addr) {
        if let Some(h) = self.host(ip) {
            self.used[h / 64] |= 1 << (h % 64);
        }
    }

    /// Return `ip` to the pool.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(h) = self.host(ip) {
            self.used[h / 64] &= !(1 << (h % 64));
        }
    }

    fn is_used(&self, host: usize) -> bool {
        self.used[host / 64] & (1 << (host % 64)) != 0
    }

    /// The host number of `ip` if it is inside this node's range.
    fn host(&self, ip: Ipv4Addr) -> Option<usize> {
        let o = ip.octets();
        let (a, b) = self.subnet;
        (o[0] == 10 && o[1] == a && o[2] == b).then_some(o[3] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_do_not_overlap() {
        assert_eq!(node_ip(0), Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(node_ip(255), Ipv4Addr::new(10, 200, 1, 0));
        assert_eq!(pod_cidr(0), "10.128.0.0/24");
        assert_eq!(pod_cidr(257), "10.129.1.0/24");
        assert_eq!(pod_cidr(32_767), "10.255.255.0/24");
    }

    #[test]
    fn allocate_release_claim() {
        let mut ips = NodeIps::new(3);
        let a = ips.allocate();
        assert_eq!(a, Some(Ipv4Addr::new(10, 128, 3, 1)));
        assert_eq!(ips.allocate(), Some(Ipv4Addr::new(10, 128, 3, 2)));
        ips.release(Ipv4Addr::new(10, 128, 3, 1));
        assert_eq!(ips.allocate(), Some(Ipv4Addr::new(10, 128, 3, 1)));
        ips.claim(Ipv4Addr::new(10, 128, 3, 3));
        assert_eq!(ips.allocate(), Some(Ipv4Addr::new(10, 128, 3, 4)));
        // Addresses outside the node's range are ignored.
        ips.claim(Ipv4Addr::new(10, 128, 4, 5));
        ips.release(Ipv4Addr::new(10, 128, 4, 1));
        assert_eq!(ips.allocate(), Some(Ipv4Addr::new(10, 128, 3, 5)));
        let mut full = NodeIps::new(0);
        for _ in 0..MAX_PODS_PER_NODE {
            assert!(full.allocate().is_some());
        }
        assert_eq!(full.allocate(), None);
    }

    #[test]
    fn groups_with_different_bases_do_not_share_addresses() {
        // Node 1 of a group at base 0 and node 1 of a group at base 2 (global 1 and 3).
        assert_ne!(node_ip(1), node_ip(2 + 1));
        assert_eq!(node_ip(2 + 1), Ipv4Addr::new(10, 200, 0, 4));
        assert_eq!(pod_cidr(2 + 1), "10.128.3.0/24");
        assert_eq!(
            NodeIps::new(1).allocate(),
            Some(Ipv4Addr::new(10, 128, 1, 1))
        );
        assert_eq!(
            NodeIps::new(2 + 1).allocate(),
            Some(Ipv4Addr::new(10, 128, 3, 1))
        );
        // A block crossing a /16 boundary: base 300, node 0 → global 300.
        assert_eq!(pod_cidr(300), "10.129.44.0/24");
        assert_eq!(node_ip(300), Ipv4Addr::new(10, 200, 1, 45));
    }
}
