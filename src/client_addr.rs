//! Who the client is: the socket peer, or what a trusted proxy in front of Portcullis says.
//!
//! `X-Forwarded-For` is written by the client as much as by proxies, so it is believed only from
//! a peer listed in `trusted_proxies`, and then only as far as the trusted chain goes: walking the
//! hops from the right, each hop was appended by the proxy to its right, so the first hop that is
//! not itself a trusted proxy is the address a trusted party vouches for. Everything left of it is
//! the client's own say. An unparsable hop (C05's `X-Forwarded-For: a`) or an empty header makes
//! the address unknown, and unknown means the peer: a value that did not parse is never trusted.
//! Pure: no I/O, unit-tested here.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether `addr` is in one of the `trusted` networks.
pub fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    let addr = addr.to_canonical();
    trusted.iter().any(|net| net.contains(&addr))
}

/// The client address of a request that arrived from `peer` with `headers`.
///
/// From an untrusted peer (or with no `trusted_proxies`) that is the peer. From a trusted peer it
/// is the right-most `X-Forwarded-For` hop (over every field, in order) that is not trusted; when
/// every hop is trusted, the left-most one (the request started inside the trusted network). A
/// missing or empty header, or any unparsable hop met on the way, gives the peer. IPv4-mapped
/// IPv6 addresses are read as IPv4.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops = Vec::new();
    for field in headers.get_all(X_FORWARDED_FOR) {
        let Ok(field) = field.to_str() else {
            return peer;
        };
        hops.extend(field.split(','));
    }
    let mut believed = None;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else {
            return peer;
        };
        if !is_trusted(addr, trusted) {
            return addr;
        }
        believed = Some(addr);
    }
    believed.unwrap_or(peer)
}

/// One hop: an IP address, optionally with a port (`1.2.3.4:80`, `[2001:db8::1]:443`), as some
/// proxies write it. Anything else (`unknown`, a name, an empty hop) is `None`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches([' ', '\t']);
    let addr = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(addr.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(fields: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for f in fields {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(f).unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        for fields in [&["198.51.100.1"][..], &["198.51.100.1, 10.0.0.1"], &[]] {
            assert_eq!(client_addr(peer, &xff(fields), &trusted), peer);
        }
        assert_eq!(client_addr(peer, &xff(&["198.51.100.1"]), &[]), peer);
    }

    #[test]
    fn a_trusted_peer_gives_the_right_most_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.10/32"]);
        let peer = ip("10.0.0.1");
        // The client wrote "1.1.1.1"; the first proxy appended the real client.
        let h = xff(&["1.1.1.1, 198.51.100.7, 192.168.1.10"]);
        assert_eq!(client_addr(peer, &h, &trusted), ip("198.51.100.7"));
        // The same chain split over several fields reads the same.
        let h = xff(&["1.1.1.1", "198.51.100.7", "192.168.1.10"]);
        assert_eq!(client_addr(peer, &h, &trusted), ip("198.51.100.7"));
        // A forged trusted-looking hop left of the real one changes nothing.
        let h = xff(&["10.9.9.9, 198.51.100.7"]);
        assert_eq!(client_addr(peer, &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn unparsable_or_empty_forwarding_means_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for fields in [
            &["a"][..],
            &[""],
            &["  "],
            &["198.51.100.7, a"],
            &["198.51.100.7,"],
            &["198.51.100.7, , 10.0.0.2"],
            &["unknown"],
            &["198.51.100.7", ""],
            &["example.com"],
            &["198.51.100.7/24"],
            &["[2001:db8::1"],
        ] {
            assert_eq!(
                client_addr(peer, &xff(fields), &trusted),
                peer,
                "{fields:?}"
            );
        }
        assert_eq!(client_addr(peer, &HeaderMap::new(), &trusted), peer);
        let mut opaque = HeaderMap::new();
        opaque.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.\xff").unwrap(),
        );
        assert_eq!(client_addr(peer, &opaque, &trusted), peer);
    }

    #[test]
    fn an_unparsable_hop_left_of_the_client_is_never_reached() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["garbage, 198.51.100.7"]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn an_all_trusted_chain_gives_its_left_most_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["10.1.2.3, 10.0.0.2"]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("10.1.2.3"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_read() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("::ffff:10.0.0.1");
        let cases = [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ];
        for (hop, want) in cases {
            assert_eq!(client_addr(peer, &xff(&[hop]), &trusted), ip(want), "{hop}");
        }
        // A mapped peer is matched against IPv4 networks, and reported as IPv4.
        assert_eq!(
            client_addr(peer, &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_addr(ip("::ffff:203.0.113.9"), &HeaderMap::new(), &[]),
            ip("203.0.113.9")
        );
    }
}
