//! The client address of a request: found once, by [`Observe`], kept on the request as
//! [`ClientAddr`], and used by the rate limiter, the logs and the traces alike.
//!
//! * **From an untrusted peer** (any peer when `TRUSTED_PROXIES` is unset), the client
//!   is the peer: `X-Forwarded-For` and `Forwarded` are ignored, so forging them
//!   changes nothing.
//! * **From a trusted proxy**, the forwarding header is read right to left (each proxy
//!   appends the address it saw), skipping trusted proxies: the client is the first
//!   address that is not one. Entries left of it were written by the client and are
//!   never believed.
//! * **Which header**: `X-Forwarded-For` when the request has one (nginx and most
//!   proxies append to it), else `Forwarded` (RFC 7239, its `for=` parameters, quoted
//!   IPv6 with a port included: `for="[2001:db8::1]:4711"`). A proxy that writes only
//!   `Forwarded` must drop a client's `X-Forwarded-For`.
//! * **A malformed entry** (not an address: `unknown`, an obfuscated name, garbage, an
//!   empty item) stops the walk: the client is the last good address before it, which
//!   is a trusted proxy or the peer. Garbage is never turned into a client.
//!
//! [`Observe`]: crate::api::middleware::Observe

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use poem::Request;
use poem::http::HeaderMap;

use crate::config::TrustedProxies;

/// The client address of a request; `None` when its peer has no IP address (a Unix
/// socket, poem's test client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The client of `req`: the one [`Observe`](crate::api::middleware::Observe) found,
    /// else (a request that did not pass it) the peer.
    #[must_use]
    pub fn of(req: &Request) -> Self {
        req.data::<Self>()
            .copied()
            .unwrap_or_else(|| Self(peer_ip(req)))
    }

    /// The client of `req` behind `proxies` (see the module docs).
    #[must_use]
    pub fn resolve(req: &Request, proxies: &TrustedProxies) -> Self {
        Self(peer_ip(req).map(|peer| client_ip(peer, req.headers(), proxies)))
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// The peer's IP address (an IPv4-mapped IPv6 one as IPv4), without the port.
#[must_use]
pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.remote_addr()
        .as_socket_addr()
        .map(|s| s.ip().to_canonical())
}

/// The client of a request from `peer` with `headers`, behind `proxies`.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !proxies.contains(peer) {
        return peer;
    }
    let (hops, rfc7239) = if let Some(xff) = joined(headers, "x-forwarded-for") {
        (xff, false)
    } else if let Some(forwarded) = joined(headers, "forwarded") {
        (forwarded, true)
    } else {
        return peer;
    };
    let mut client = peer;
    for hop in hops.rsplit(',') {
        let ip = if rfc7239 {
            forwarded_for(hop)
        } else {
            node_ip(hop)
        };
        let Some(ip) = ip else {
            break;
        };
        client = ip;
        if !proxies.contains(ip) {
            break;
        }
    }
    client
}

/// Every value of header `name`, in order, joined with commas (as RFC 9110 reads
/// repeated fields); `None` when absent. Bytes that are not text become U+FFFD, so they
/// make their entry malformed and leave the others readable.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<_> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// One `X-Forwarded-For` entry: `192.0.2.7`, `2001:db8::1`, `192.0.2.7:4711`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn node_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })?;
    Some(ip.to_canonical())
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.7;proto=https`,
/// `for="[2001:db8::1]:4711"`); `None` without one or when it is not an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    node_ip(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The client of a request from `peer` with `headers`, behind `trusted`.
    fn client(trusted: &str, peer: &str, headers: &[(&str, &str)]) -> IpAddr {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                poem::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        client_ip(ip(peer), &map, &trusted.parse().unwrap())
    }

    const XFF: &str = "x-forwarded-for";

    #[test]
    fn without_trusted_proxies_forwarding_headers_are_ignored() {
        assert_eq!(
            client("", "192.0.2.1", &[(XFF, "203.0.113.9")]),
            ip("192.0.2.1")
        );
        assert_eq!(
            client(
                "10.0.0.0/8",
                "192.0.2.1",
                &[("forwarded", "for=203.0.113.9")]
            ),
            ip("192.0.2.1"),
            "the peer is not a trusted proxy"
        );
        assert_eq!(client("10.0.0.1", "10.0.0.1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_right_most_untrusted_address() {
        let t = "10.0.0.0/8";
        assert_eq!(
            client(t, "10.0.0.1", &[(XFF, "203.0.113.9")]),
            ip("203.0.113.9")
        );
        // A forged left-most entry is never believed.
        assert_eq!(
            client(t, "10.0.0.1", &[(XFF, "1.1.1.1, 203.0.113.9")]),
            ip("203.0.113.9")
        );
        // Two proxies: the inner one's hop is skipped.
        assert_eq!(
            client(t, "10.0.0.1", &[(XFF, "1.1.1.1, 203.0.113.9, 10.0.0.2")]),
            ip("203.0.113.9")
        );
        // Repeated headers are one list, in order.
        assert_eq!(
            client(
                t,
                "10.0.0.1",
                &[(XFF, "1.1.1.1"), (XFF, "203.0.113.9, 10.0.0.2")]
            ),
            ip("203.0.113.9")
        );
        // Every hop a proxy: the left-most one.
        assert_eq!(
            client(t, "10.0.0.1", &[(XFF, "10.0.0.3, 10.0.0.2")]),
            ip("10.0.0.3")
        );
        // Ports and brackets, and IPv4-mapped addresses as IPv4.
        assert_eq!(
            client(t, "10.0.0.1", &[(XFF, "203.0.113.9:4711")]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(t, "10.0.0.1", &[(XFF, "[2001:db8::7]:80")]),
            ip("2001:db8::7")
        );
        assert_eq!(
            client(t, "::ffff:10.0.0.1", &[(XFF, "::ffff:203.0.113.9")]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let t = "10.0.0.0/8, fd00::/8";
        let fwd = |v| client(t, "10.0.0.1", &[("forwarded", v)]);
        assert_eq!(fwd("for=203.0.113.9"), ip("203.0.113.9"));
        assert_eq!(
            fwd(
                r#"for=1.1.1.1, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;by=10.0.0.1"#
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd(r#"proto=http;for="[fd00::5]", for=192.0.2.60"#),
            ip("192.0.2.60")
        );
        // X-Forwarded-For wins when both are there.
        assert_eq!(
            client(
                t,
                "10.0.0.1",
                &[("forwarded", "for=1.1.1.1"), (XFF, "203.0.113.9")]
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_malformed_entry_stops_the_walk_at_the_last_good_address() {
        let t = "10.0.0.0/8";
        for bad in [
            "garbage",
            "unknown",
            "",
            " ",
            "1.2.3",
            "[::1",
            "203.0.113.9/24",
        ] {
            let xff = format!("1.1.1.1, {bad}");
            assert_eq!(
                client(t, "10.0.0.1", &[(XFF, xff.as_str())]),
                ip("10.0.0.1"),
                "{xff:?}"
            );
            let xff = format!("1.1.1.1, {bad}, 10.0.0.2");
            assert_eq!(
                client(t, "10.0.0.1", &[(XFF, xff.as_str())]),
                ip("10.0.0.2"),
                "{xff:?}"
            );
        }
        let fwd = |v| client(t, "10.0.0.1", &[("forwarded", v)]);
        assert_eq!(fwd("for=unknown"), ip("10.0.0.1"));
        assert_eq!(fwd("for=_hidden, for=10.0.0.2"), ip("10.0.0.2"));
        assert_eq!(fwd("proto=https"), ip("10.0.0.1"));
        assert_eq!(fwd("for=garbage;for=1.1.1.1"), ip("10.0.0.1"));
        assert_eq!(
            fwd(r#"for="[2001:db8::1]:80, for=1.1.1.1""#),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn bytes_that_are_not_text_spoil_only_their_own_entry() {
        let mut map = HeaderMap::new();
        let value = poem::http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").unwrap();
        map.insert(XFF, value);
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(client_ip(ip("10.0.0.1"), &map, &t), ip("203.0.113.9"));
        let value = poem::http::HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap();
        map.insert(XFF, value);
        map.insert("forwarded", "for=1.1.1.1".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &map, &t), ip("10.0.0.1"));
    }

    #[test]
    fn a_request_without_an_ip_peer_has_an_unknown_client() {
        let req = Request::builder().header(XFF, "203.0.113.9").finish();
        let client = ClientAddr::resolve(&req, &"0.0.0.0/0".parse().unwrap());
        assert_eq!(client, ClientAddr(None));
        assert_eq!(client.to_string(), "unknown");
        assert_eq!(ClientAddr::of(&req), ClientAddr(None));
    }
}
