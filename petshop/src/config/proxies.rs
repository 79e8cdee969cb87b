//! `TRUSTED_PROXIES`: the networks of the proxies in front of the service, whose
//! `X-Forwarded-For` (or `Forwarded`) the service believes. Parsed here, by hand: a CIDR
//! is an address and a prefix length, not worth a crate.
//!
//! What the service does with them (finding the client of a request) is
//! [`crate::api::client_addr`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`); a bare
/// address is one host (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network's address, host bits cleared.
    network: IpAddr,
    /// The prefix length (0–32 for IPv4, 0–128 for IPv6).
    len: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`,
    /// what a dual-stack listener sees) counts as its IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(ip)), self.len, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(ip), self.len, 128) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` (the low `width` bits of an address) with all but the first `len` cleared.
fn mask(bits: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let host = u32::from(width - len);
    bits >> host << host
}

impl FromStr for Cidr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let ip = addr.parse::<IpAddr>().map_err(|_| ())?.to_canonical();
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            // Digits only: `u8::from_str` would take `+8`.
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().map_err(|_| ())?
            }
            Some(_) => return Err(()),
            None => width,
        };
        if len > width {
            return Err(());
        }
        let network = match ip {
            IpAddr::V4(v4) => {
                let bits = mask(u128::from(u32::from(v4)), len, 32);
                IpAddr::V4(u32::try_from(bits).map_err(|_| ())?.into())
            }
            IpAddr::V6(v6) => IpAddr::V6(mask(u128::from(v6), len, 128).into()),
        };
        Ok(Self { network, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

/// The trusted proxies; empty (the default): none, so forwarding headers are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Whether `ip` is one of them.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, as given.
    #[must_use]
    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated CIDRs or addresses; blank: none. The error shows the bad entry.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        text.split(',')
            .map(|entry| {
                let entry = entry.trim();
                entry.parse::<Cidr>().map_err(|()| {
                    format!(
                        "{entry:?} is not an address or a CIDR: use comma-separated addresses \
                         or networks of the proxies in front, e.g. 10.0.0.0/8,192.168.1.7,fd00::/8"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_holds_the_addresses_under_its_prefix() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")));
        // What a dual-stack listener reports for an IPv4 client.
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
    }

    #[test]
    fn a_bare_address_is_one_host_and_host_bits_are_cleared() {
        let host: Cidr = "192.168.1.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.168.1.7/32");
        assert!(host.contains(ip("192.168.1.7")));
        assert!(!host.contains(ip("192.168.1.8")));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "10.9.8.7/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn lists_are_comma_separated_and_a_bad_entry_is_shown() {
        let p: TrustedProxies = " 10.0.0.0/8, 127.0.0.1 ,fd00::/8".parse().unwrap();
        assert_eq!(p.networks().len(), 3);
        assert!(p.contains(ip("127.0.0.1")) && p.contains(ip("10.3.2.1")));
        assert!(!p.contains(ip("127.0.0.2")));
        assert!(" ".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "nginx",
            "1.2.3.4:80",
        ] {
            let e = format!("127.0.0.1,{bad}")
                .parse::<TrustedProxies>()
                .unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("CIDR"),
                "{bad}: {e}"
            );
        }
        let e = "10.0.0.1,,10.0.0.2".parse::<TrustedProxies>().unwrap_err();
        assert!(e.contains("\"\""), "{e}");
    }
}
