//! IP networks in CIDR notation, as used by trunk source ACLs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address and a prefix length, written `10.0.0.0/8`,
/// `192.0.2.7` (a single host, `/32`) or `2001:db8::/32`.
///
/// IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) are stored as the IPv4
/// network they denote (`10.0.0.0/8`), and [`Cidr::contains`] treats an
/// IPv4-mapped IPv6 address (how a dual-stack socket reports an IPv4 peer) as
/// the IPv4 address it carries. Otherwise the families never match: `::/0`
/// contains every IPv6 address and no IPv4 address, `0.0.0.0/0` the reverse.
///
/// Build one with [`str::parse`] or [`Cidr::new`]; both reject host bits set
/// beyond the prefix (`10.1.2.3/8`), which in an ACL is almost always a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits zero when built by `new` or `parse`).
    pub addr: IpAddr,
    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

/// Why a string or an address/prefix pair is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IP address")]
    BadAddress(String),
    /// The part after `/` is not a decimal number.
    #[error("`{0}` is not a prefix length")]
    BadPrefix(String),
    /// The prefix is longer than the address (more than 32 for IPv4, 128 for IPv6).
    #[error("prefix /{prefix} is longer than /{max}, the length of the address")]
    PrefixTooLong {
        /// The prefix that was given.
        prefix: u32,
        /// The longest prefix the address family allows.
        max: u8,
    },
    /// Bits are set after the prefix, as in `10.1.2.3/8`.
    #[error("address has bits set after the /{prefix} prefix; the network is {network}")]
    HostBitsSet {
        /// The prefix that was given.
        prefix: u8,
        /// The network the address belongs to (host bits cleared).
        network: Cidr,
    },
}

impl Cidr {
    /// A network from its address and prefix length. IPv4-mapped IPv6
    /// networks with a prefix of at least 96 become the IPv4 network.
    ///
    /// # Errors
    /// [`CidrError::PrefixTooLong`] or [`CidrError::HostBitsSet`].
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::PrefixTooLong {
                prefix: u32::from(prefix),
                max,
            });
        }
        let (addr, prefix) = canonical(addr, prefix);
        let network = Cidr {
            addr: mask(addr, prefix),
            prefix,
        };
        if network.addr != addr {
            return Err(CidrError::HostBitsSet { prefix, network });
        }
        Ok(network)
    }

    /// Whether `ip` lies in this network. See the type docs for how IPv4,
    /// IPv6 and IPv4-mapped IPv6 addresses compare.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        // The fields are public, so a hand-built value may be unnormalised:
        // canonicalise and clamp here rather than trust it.
        let prefix = self.prefix.min(max_prefix(self.addr));
        let (net, prefix) = canonical(self.addr, prefix);
        let ip = ip.to_canonical();
        match (net, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(net, prefix) == mask(ip, prefix)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::BadAddress(addr_text.to_owned()))?;
        let prefix = match prefix_text {
            None => max_prefix(addr),
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::BadPrefix(p.to_owned()));
                }
                let wide: u32 = p.parse().unwrap_or(u32::MAX);
                let max = max_prefix(addr);
                u8::try_from(wide)
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or(CidrError::PrefixTooLong { prefix: wide, max })?
            }
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// IPv4-mapped IPv6 networks of prefix >= 96 are IPv4 networks.
fn canonical(addr: IpAddr, prefix: u8) -> (IpAddr, u8) {
    match addr {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), prefix - 96),
            None => (addr, prefix),
        },
        _ => (addr, prefix),
    }
}

/// `addr` with every bit after `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        match s.parse() {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        match s.parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn v4_network() {
        let c = cidr("127.0.0.0/8");
        assert!(c.contains(ip("127.0.0.1")));
        assert!(c.contains(ip("127.255.255.255")));
        assert!(!c.contains(ip("128.0.0.0")));
        assert!(!c.contains(ip("126.255.255.255")));
        let c = cidr("192.0.2.64/26");
        assert!(c.contains(ip("192.0.2.64")));
        assert!(c.contains(ip("192.0.2.127")));
        assert!(!c.contains(ip("192.0.2.128")));
        assert!(!c.contains(ip("192.0.2.63")));
    }

    #[test]
    fn v4_host_is_slash_32() {
        let c = cidr("10.1.2.3");
        assert_eq!(c.prefix, 32);
        assert_eq!(c.to_string(), "10.1.2.3/32");
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("10.1.2.4")));
        assert_eq!(cidr("10.1.2.3/32"), c);
    }

    #[test]
    fn slash_zero_matches_its_family_only() {
        let any4 = cidr("0.0.0.0/0");
        assert!(any4.contains(ip("1.2.3.4")));
        assert!(any4.contains(ip("255.255.255.255")));
        assert!(!any4.contains(ip("::1")));
        let any6 = cidr("::/0");
        assert!(any6.contains(ip("::1")));
        assert!(any6.contains(ip("2001:db8::1")));
        assert!(!any6.contains(ip("1.2.3.4")));
    }

    #[test]
    fn v6_network() {
        let c = cidr("2001:db8::/32");
        assert!(c.contains(ip("2001:db8::1")));
        assert!(c.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!c.contains(ip("2001:db9::1")));
        let lo = cidr("::1/128");
        assert!(lo.contains(ip("::1")));
        assert!(!lo.contains(ip("::2")));
        assert_eq!(cidr("::1"), lo);
    }

    #[test]
    fn mismatched_families_never_match() {
        assert!(!cidr("127.0.0.0/8").contains(ip("::1")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        assert!(!cidr("2001:db8::/32").contains(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_networks() {
        let c = cidr("10.0.0.0/8");
        assert!(c.contains(ip("::ffff:10.9.8.7")));
        assert!(!c.contains(ip("::ffff:11.0.0.1")));
        // A mapped network is stored as the IPv4 network it denotes.
        let mapped = cidr("::ffff:10.0.0.0/104");
        assert_eq!(mapped, c);
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert!(mapped.contains(ip("10.1.1.1")));
        // A hand-built unnormalised value behaves the same.
        let raw = Cidr {
            addr: ip("::ffff:10.0.0.0"),
            prefix: 104,
        };
        assert!(raw.contains(ip("10.1.1.1")));
        assert!(!raw.contains(ip("11.1.1.1")));
    }

    #[test]
    fn hand_built_out_of_range_prefix_is_clamped() {
        let c = Cidr {
            addr: ip("10.0.0.1"),
            prefix: 200,
        };
        assert!(c.contains(ip("10.0.0.1")));
        assert!(!c.contains(ip("10.0.0.2")));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::BadAddress("10.0.0".into()))
        );
        assert_eq!(
            "10.0.0.0/".parse::<Cidr>(),
            Err(CidrError::BadPrefix(String::new()))
        );
        assert_eq!(
            "10.0.0.0/+8".parse::<Cidr>(),
            Err(CidrError::BadPrefix("+8".into()))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        );
        assert_eq!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: 129,
                max: 128
            })
        );
        assert_eq!(
            "10.0.0.0/99999999999".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: u32::MAX,
                max: 32
            })
        );
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>(),
            Err(CidrError::HostBitsSet {
                prefix: 8,
                network: cidr("10.0.0.0/8")
            })
        );
        assert!("fe80::1%eth0".parse::<Cidr>().is_err());
        assert!(" 10.0.0.0/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.0/8",
            "192.0.2.1/32",
            "::/0",
            "2001:db8::/48",
            "::1/128",
        ] {
            assert_eq!(cidr(s).to_string(), s);
            assert_eq!(cidr(&cidr(s).to_string()), cidr(s));
        }
    }
}
