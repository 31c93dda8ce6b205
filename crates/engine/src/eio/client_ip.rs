//! Who a client is, for `engine.max_sessions_per_ip`: its address, read from
//! `X-Forwarded-For` when the connection comes from a trusted proxy
//! (`engine.trusted_proxies`), and the key it counts under (an IPv4 address, or the
//! /64 network of an IPv6 one: a single host is commonly given a whole /64, so counting
//! addresses would let it open sessions from 2^64 of them).
//!
//! Pure: an address, headers and the trusted networks in, a key out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is its /32 or
/// /128). An IPv4-mapped network (`::ffff:10.0.0.0/104`) is kept as the IPv4 one
/// (`10.0.0.0/8`), as a peer's IPv4-mapped address is (it never matched before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not a network [`Cidr`] takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an address, with or without `/prefix`.
    #[error("is not an address or a network (a.b.c.d/n, x::/n)")]
    NotAnAddress,
    /// A prefix length that is not a number up to the address's bits.
    #[error("has a prefix length that is not a number from 0 to {max}")]
    BadPrefix {
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// An IPv4-mapped address with a prefix under 96: the network would reach past
    /// the IPv4-mapped addresses, which are compared as IPv4.
    #[error(
        "is an IPv4-mapped network wider than the IPv4 addresses (/{prefix} is under /96); \
         write the IPv4 network (e.g. 10.0.0.0/8 for ::ffff:10.0.0.0/104)"
    )]
    MappedTooWide {
        /// The prefix length written.
        prefix: u8,
    },
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| CidrError::NotAnAddress)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(CidrError::BadPrefix { max })?,
            None => max,
        };
        // Peers are compared as IPv4 when IPv4-mapped (`canonical`), so the network
        // is too: `::ffff:a.b.c.d/n` is `a.b.c.d/(n - 96)`.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            let prefix = prefix
                .checked_sub(96)
                .ok_or(CidrError::MappedTooWide { prefix })?;
            return Ok(Cidr {
                addr: IpAddr::V4(v4),
                prefix,
            });
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    /// Parses `text`; `None` when it is not an address with an optional prefix length
    /// that fits it (see [`FromStr`](std::str::FromStr) for why).
    pub fn parse(text: &str) -> Option<Cidr> {
        text.parse().ok()
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What sessions are counted under: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    V4(u32),
    V6(u64),
}

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> ClientKey {
        match canonical(ip) {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => ClientKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// `ip`, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What is open per client address (sessions in the registry, TCP connections in the
/// accept loop): one entry per address with something open, none for the others.
#[derive(Debug, Default)]
pub(crate) struct PerAddress(std::collections::HashMap<ClientKey, usize>);

impl PerAddress {
    /// Counts one more for `key`, unless it has `bound` open (false).
    pub(crate) fn take(&mut self, key: ClientKey, bound: usize) -> bool {
        let open = self.0.entry(key).or_default();
        if *open >= bound {
            return false;
        }
        *open += 1;
        true
    }

    /// One fewer for `key`; its entry goes with its last.
    pub(crate) fn give(&mut self, key: ClientKey) {
        if let Some(open) = self.0.get_mut(&key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.0.remove(&key);
            }
        }
    }

    /// How many are open for `key`.
    #[cfg(test)]
    pub(crate) fn open(&self, key: ClientKey) -> usize {
        self.0.get(&key).copied().unwrap_or(0)
    }

    /// Whether nothing is open for any address.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Open TCP connections per client address, for the accept loop (see
/// [`tcp_bound`]): each [`AddressPermit`] counts one until dropped.
#[derive(Debug, Default)]
pub(crate) struct AddressCounts(std::sync::Mutex<PerAddress>);

/// One connection counted under its address; given back when dropped.
#[derive(Debug)]
pub(crate) struct AddressPermit {
    counts: std::sync::Arc<AddressCounts>,
    key: ClientKey,
}

impl AddressCounts {
    /// Counts one more connection for `key` unless it has `bound` open.
    pub(crate) fn take(
        self: &std::sync::Arc<Self>,
        key: ClientKey,
        bound: usize,
    ) -> Option<AddressPermit> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.take(key, bound).then(|| AddressPermit {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.give(self.key);
    }
}

/// Most open TCP connections one address may hold when `max_sessions_per_ip` is
/// `sessions`: a polling session uses two at a time (its waiting GET and a POST), and
/// a few more leave room for the handshake itself and keep-alive connections a browser
/// keeps. `None` when sessions per address are not bounded.
pub(crate) fn tcp_bound(sessions: usize) -> Option<usize> {
    (sessions > 0).then(|| sessions.saturating_mul(2).saturating_add(8))
}

/// Whether `ip` is in one of the `trusted` proxy networks.
pub(crate) fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// Most `X-Forwarded-For` entries looked at: a chain of proxies is short, and the
/// header is the client's to fill.
const MAX_HOPS: usize = 16;

/// The client's address: `peer` (the TCP connection's), unless `peer` is a trusted
/// proxy; then the right-most `X-Forwarded-For` entry that is not one (each proxy
/// appends the address it got the request from, so entries left of the first untrusted
/// one are whatever the client wrote). With every entry trusted, the left-most; with
/// no readable entry, `peer`.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // Right to left: the last header line first, each line's last entry first.
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','));
    let mut last = peer;
    for entry in entries.take(MAX_HOPS) {
        let Some(ip) = parse_entry(entry) else {
            // Unreadable: a proxy we trust would not write it, so the client did.
            return last;
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        last = ip;
    }
    last
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest
            .split_once(']')?
            .0
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    let (addr, _port) = entry.rsplit_once(':')?;
    addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn networks_parse_and_contain() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("fd00::1")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe80::1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/-1",
            "",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    /// An IPv4-mapped network is the IPv4 one: peers are compared as IPv4 when
    /// IPv4-mapped, so `::ffff:10.0.0.0/104` never matched a proxy at 10.1.2.3.
    #[test]
    fn ipv4_mapped_networks_are_their_ipv4_networks() {
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, Cidr::parse("10.0.0.0/8").unwrap());
        assert!(mapped.contains(ip("10.1.2.3")));
        assert!(mapped.contains(ip("::ffff:10.1.2.3")));
        assert!(!mapped.contains(ip("11.0.0.1")));
        let one = Cidr::parse("::ffff:192.0.2.7").unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all = Cidr::parse("::ffff:0.0.0.0/96").unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("fd00::1")));
        // Wider than the mapped range: refused with what to write instead.
        assert_eq!(
            "::ffff:10.0.0.0/95".parse::<Cidr>(),
            Err(CidrError::MappedTooWide { prefix: 95 })
        );
        // Plain IPv6 networks are untouched.
        let v6 = Cidr::parse("::/0").unwrap();
        assert_eq!(v6.to_string(), "::/0");
        assert!(!v6.contains(ip("10.1.2.3")));
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 32 })
        );
        assert_eq!("x".parse::<Cidr>(), Err(CidrError::NotAnAddress));
    }

    #[test]
    fn connections_per_address_are_bounded_and_given_back() {
        let counts = std::sync::Arc::new(AddressCounts::default());
        let key = ClientKey::of(ip("192.0.2.1"));
        let held: Vec<AddressPermit> = (0..3).map(|_| counts.take(key, 3).unwrap()).collect();
        assert!(counts.take(key, 3).is_none());
        assert!(counts.take(ClientKey::of(ip("192.0.2.2")), 3).is_some());
        drop(held);
        assert!(counts.0.lock().unwrap().is_empty(), "no entry left behind");
        assert_eq!(tcp_bound(0), None);
        assert_eq!(tcp_bound(100), Some(208));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:1.2.3.4")),
            ClientKey::of(ip("1.2.3.4"))
        );
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies_right_to_left() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let headers = forwarded(&["6.6.6.6, 1.2.3.4", "10.0.0.7"]);
        // Not from a proxy: the header is the client's own, ignored.
        assert_eq!(client_ip(ip("5.5.5.5"), &headers, &trusted), ip("5.5.5.5"));
        // From a proxy: the right-most untrusted entry, not what the client wrote left of it.
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &[]),
            ip("10.0.0.1"),
            "nothing trusted"
        );
        // Ports and brackets.
        let headers = forwarded(&["[2001:db8::5]:443"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("2001:db8::5")
        );
        let headers = forwarded(&["1.2.3.4:5678"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("1.2.3.4"));
        // Garbage stops the walk at the last trusted hop; no header: the proxy itself.
        let headers = forwarded(&["1.2.3.4, garbage, 10.0.0.9"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("10.0.0.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // Every entry trusted: the left-most.
        let headers = forwarded(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("10.1.1.1")
        );
    }
}
