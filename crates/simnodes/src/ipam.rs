//! Fake addresses: node i has InternalIP `10.200.x.y` (x.y = i+1) and pod range
//! `10.(128 + i/256).(i%256).0/24`, so 32,768 nodes fit without overlap.

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
#[derive(Debug, Clone, Default)]
pub struct NodeIps {
    used: [u64; 4],
}

impl NodeIps {
    /// Take the lowest free address of node `index`'s range.
    pub fn allocate(&mut self, index: usize) -> Option<Ipv4Addr> {
        let host = (1..=MAX_PODS_PER_NODE as usize).find(|h| !self.is_used(*h))?;
        self.used[host / 64] |= 1 << (host % 64);
        let (a, b) = subnet(index);
        Some(Ipv4Addr::new(10, a, b, host as u8))
    }

    /// Mark `ip` as used (a pod that already had it, e.g. after a restart).
    pub fn claim(&mut self, index: usize, ip: Ipv4Addr) {
        if let Some(h) = Self::host(index, ip) {
            self.used[h / 64] |= 1 << (h % 64);
        }
    }

    /// Return `ip` to the pool.
    pub fn release(&mut self, index: usize, ip: Ipv4Addr) {
        if let Some(h) = Self::host(index, ip) {
            self.used[h / 64] &= !(1 << (h % 64));
        }
    }

    fn is_used(&self, host: usize) -> bool {
        self.used[host / 64] & (1 << (host % 64)) != 0
    }

    /// The host number of `ip` if it is inside node `index`'s range.
    fn host(index: usize, ip: Ipv4Addr) -> Option<usize> {
        let o = ip.octets();
        let (a, b) = subnet(index);
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
        let mut ips = NodeIps::default();
        let a = ips.allocate(3);
        assert_eq!(a, Some(Ipv4Addr::new(10, 128, 3, 1)));
        assert_eq!(ips.allocate(3), Some(Ipv4Addr::new(10, 128, 3, 2)));
        ips.release(3, Ipv4Addr::new(10, 128, 3, 1));
        assert_eq!(ips.allocate(3), Some(Ipv4Addr::new(10, 128, 3, 1)));
        ips.claim(3, Ipv4Addr::new(10, 128, 3, 3));
        assert_eq!(ips.allocate(3), Some(Ipv4Addr::new(10, 128, 3, 4)));
        // Addresses outside the node's range are ignored.
        ips.claim(3, Ipv4Addr::new(10, 128, 4, 5));
        let mut full = NodeIps::default();
        for _ in 0..MAX_PODS_PER_NODE {
            assert!(full.allocate(0).is_some());
        }
        assert_eq!(full.allocate(0), None);
    }
}
