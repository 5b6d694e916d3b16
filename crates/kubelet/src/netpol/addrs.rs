//! Sets of IPv4 addresses as sorted, disjoint inclusive ranges: what an ingress rule's
//! `from` or an egress rule's `to` admits (pod IPs, `ipBlock.cidr` minus its `except`
//! blocks), rendered as the elements of an nftables interval set.

use std::net::Ipv4Addr;

/// IPv4 addresses, as sorted ranges that neither overlap nor touch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrSet(Vec<(u32, u32)>);

/// The first and last address of `a.b.c.d/n` (host bits ignored). None for anything but
/// an IPv4 CIDR (IPv6 blocks never match this IPv4-only pod network).
pub fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (addr, prefix) = s.trim().split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if prefix > 32 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let first = u32::from(addr) & mask;
    Some((first, first | !mask))
}

impl AddrSet {
    pub fn new() -> AddrSet {
        AddrSet(Vec::new())
    }

    /// One address.
    pub fn single(ip: Ipv4Addr) -> AddrSet {
        AddrSet(vec![(u32::from(ip), u32::from(ip))])
    }

    /// An `ipBlock`: `cidr` without the `except` blocks. Invalid or IPv6 input: empty.
    pub fn block(cidr: &str, except: &[String]) -> AddrSet {
        let Some(range) = parse_cidr(cidr) else {
            return AddrSet::new();
        };
        let mut set = AddrSet(vec![range]);
        for e in except {
            if let Some(r) = parse_cidr(e) {
                set.subtract(&AddrSet(vec![r]));
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.0.iter().any(|&(a, b)| a <= ip && ip <= b)
    }

    pub fn insert(&mut self, ip: Ipv4Addr) {
        self.union(&AddrSet::single(ip));
    }

    /// Adds every address of `other`.
    pub fn union(&mut self, other: &AddrSet) {
        let mut all: Vec<(u32, u32)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(all.len());
        for (a, b) in all {
            match merged.last_mut() {
                // Overlapping or adjacent: one range.
                Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.0 = merged;
    }

    /// Removes every address of `other`.
    pub fn subtract(&mut self, other: &AddrSet) {
        let mut out = Vec::with_capacity(self.0.len());
        for &(a, b) in &self.0 {
            let mut pieces = vec![(a, b)];
            for &(x, y) in &other.0 {
                let mut next = Vec::with_capacity(pieces.len() + 1);
                for (p, q) in pieces {
                    if y < p || x > q {
                        next.push((p, q));
                        continue;
                    }
                    if x > p {
                        next.push((p, x - 1));
                    }
                    if y < q {
                        next.push((y + 1, q));
                    }
                }
                pieces = next;
            }
            out.extend(pieces);
        }
        self.0 = out;
    }

    /// The set's elements as nftables writes them: `a.b.c.d`, `a.b.c.d/n` when a range is
    /// exactly one block, else `first-last`.
    pub fn elements(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|&(a, b)| {
                let (first, last) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
                if a == b {
                    return first.to_string();
                }
                let size = u64::from(b - a) + 1;
                if size.is_power_of_two() && u64::from(a) % size == 0 {
                    format!("{first}/{}", 32 - size.trailing_zeros())
                } else {
                    format!("{first}-{last}")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_exceptions() {
        let set = AddrSet::block("172.17.0.0/16", &["172.17.1.0/24".into()]);
        assert_eq!(
            set.elements(),
            ["172.17.0.0/24", "172.17.2.0-172.17.255.255"]
        );
        assert!(set.contains(ip("172.17.0.9")));
        assert!(!set.contains(ip("172.17.1.9")));
        assert!(set.contains(ip("172.17.2.0")));
        // Host bits are ignored, as in a CIDR's network; bad or IPv6 blocks match nothing.
        assert_eq!(AddrSet::block("10.1.2.3/8", &[]).elements(), ["10.0.0.0/8"]);
        assert!(AddrSet::block("2001:db8::/32", &[]).is_empty());
        assert!(AddrSet::block("nonsense", &[]).is_empty());
        assert_eq!(AddrSet::block("0.0.0.0/0", &[]).elements(), ["0.0.0.0/0"]);
        // Excepting everything leaves nothing; excepting the edges trims them.
        assert!(AddrSet::block("10.0.0.0/24", &["10.0.0.0/23".into()]).is_empty());
        assert_eq!(
            AddrSet::block(
                "10.0.0.0/24",
                &["10.0.0.0/32".into(), "10.0.0.255/32".into()]
            )
            .elements(),
            ["10.0.0.1-10.0.0.254"]
        );
    }

    #[test]
    fn unions_merge_overlapping_and_adjacent_ranges() {
        let mut set = AddrSet::new();
        set.insert(ip("10.42.0.6"));
        set.insert(ip("10.42.0.5"));
        set.insert(ip("10.42.0.9"));
        assert_eq!(set.elements(), ["10.42.0.5-10.42.0.6", "10.42.0.9"]);
        set.union(&AddrSet::block("10.42.0.0/29", &[]));
        assert_eq!(set.elements(), ["10.42.0.0/29", "10.42.0.9"]);
        set.union(&AddrSet::block("255.255.255.255/32", &[]));
        assert_eq!(
            set.elements(),
            ["10.42.0.0/29", "10.42.0.9", "255.255.255.255"]
        );
    }
}
