//! Which addresses a request to a tenant-controlled URL may reach.
//!
//! Public addresses only: loopback, private (RFC 1918, IPv6 unique-local), link-local, CGNAT
//! (100.64.0.0/10), multicast, broadcast, unspecified, documentation and other reserved ranges
//! are refused, and so are the IPv6 forms that embed such an IPv4 address (IPv4-mapped
//! `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`). The operator's allow-list
//! (`outbound.allow`: host names and CIDR ranges) lifts the refusal for what it names, and is also
//! what may be reached over plain `http`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// The operator's exceptions: host names (exact, case-insensitive) and address ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    networks: Vec<IpNet>,
}

/// Why a URL or address may not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only https URLs may be called (plain http only to allow-listed hosts)")]
    NotHttps,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL carries a user name or password")]
    Credentials,
    #[error("{0} is not a public address (allow-list it with VOXBRIDGE__OUTBOUND__ALLOW)")]
    NonPublic(IpAddr),
    #[error("{0} resolves to no public address")]
    NoPublicAddress(String),
}

impl AllowList {
    /// Parses `outbound.allow`: comma-separated host names and CIDR ranges (a bare address is
    /// its own /32 or /128). Empty entries are ignored.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            if let Ok(network) = entry.parse::<IpNet>() {
                list.networks.push(network);
            } else if let Ok(address) = entry.parse::<IpAddr>() {
                list.networks.push(IpNet::from(address));
            } else if is_host_name(entry) {
                list.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!("{entry:?} is neither a host name nor a CIDR range"));
            }
        }
        Ok(list)
    }

    /// Whether the host name is allow-listed.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Whether the address is allow-listed.
    pub fn allows_address(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// Whether `address` may be connected to for `host` (the name it was resolved from).
    pub fn permits(&self, host: Option<&str>, address: IpAddr) -> bool {
        host.is_some_and(|host| self.allows_host(host))
            || self.allows_address(address)
            || is_public(address)
    }

    /// Checks a URL before any request: `https` (or `http` to an allow-listed host), no
    /// credentials in it, and an address literal that may be reached. Names are checked again,
    /// address by address, when they are resolved at connect time.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let host = url.host().ok_or(Refusal::NoHost)?;
        let listed = match &host {
            Host::Domain(name) => self.allows_host(name),
            Host::Ipv4(address) => self.allows_address(IpAddr::V4(*address)),
            Host::Ipv6(address) => self.allows_address(IpAddr::V6(*address)),
        };
        match url.scheme() {
            "https" => {}
            "http" if listed => {}
            _ => return Err(Refusal::NotHttps),
        }
        let literal = match host {
            Host::Domain(_) => None,
            Host::Ipv4(address) => Some(IpAddr::V4(address)),
            Host::Ipv6(address) => Some(IpAddr::V6(address)),
        };
        match literal {
            Some(address) if !self.permits(None, address) => Err(Refusal::NonPublic(address)),
            _ => Ok(()),
        }
    }
}

impl AllowList {
    /// [`AllowList::check_url`] for a WebSocket URL: `wss` as `https`, `ws` as `http` (so only
    /// to an allow-listed host).
    pub fn check_websocket_url(&self, url: &Url) -> Result<(), Refusal> {
        let scheme = match url.scheme() {
            "wss" => "https",
            "ws" => "http",
            _ => return Err(Refusal::NotHttps),
        };
        let mut as_http = url.clone();
        as_http.set_scheme(scheme).map_err(|()| Refusal::NotHttps)?;
        self.check_url(&as_http)
    }
}

/// Host-name characters (letters, digits, `-`, `.`), not an address.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && text.bytes().any(|b| b.is_ascii_alphabetic())
}

/// IPv6 forms of an IPv4 address (mapped, NAT64, 6to4) as that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = v6.segments();
    let octets = v6.octets();
    // NAT64 well-known prefix 64:ff9b::/96.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    // 6to4 2002:AABB:CCDD::/48.
    if segments[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// Whether an address is on the public internet.
pub fn is_public(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    let reserved = v4.is_unspecified()
        || v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || a == 0                                   // "this network"
        || (a == 100 && (64..128).contains(&b))     // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0)           // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))       // benchmarking 198.18.0.0/15
        || a >= 240; // reserved 240.0.0.0/4
    !reserved
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    let reserved = v6.is_unspecified()
        || v6.is_loopback()
        || v6.is_multicast()
        || (first & 0xfe00) == 0xfc00                // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80                // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0                // site-local (deprecated) fec0::/10
        || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation 2001:db8::/32
        || first == 0x0100 && v6.segments()[1..4] == [0, 0, 0]; // discard 100::/64
    !reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_are_public() {
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "100.128.0.1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(internal)), "{internal}");
        }
    }

    #[test]
    fn the_allow_list_takes_hosts_and_ranges() {
        let list = AllowList::parse(" hooks.internal , 10.0.0.0/8,192.168.1.5, ,fd00::/8").unwrap();
        assert!(list.allows_host("HOOKS.internal."));
        assert!(!list.allows_host("evil.internal"));
        assert!(list.allows_address(ip("10.9.9.9")));
        assert!(list.allows_address(ip("192.168.1.5")));
        assert!(!list.allows_address(ip("192.168.1.6")));
        assert!(
            list.allows_address(ip("::ffff:10.0.0.1")),
            "mapped forms too"
        );
        assert!(list.allows_address(ip("fd00::1")));
        assert!(AllowList::parse("not a host!").is_err());
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert_eq!(AllowList::parse("").unwrap(), AllowList::default());
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_addresses() {
        let none = AllowList::default();
        let url = |text: &str| Url::parse(text).unwrap();
        assert_eq!(none.check_url(&url("https://api.example.com/x")), Ok(()));
        assert_eq!(
            none.check_url(&url("http://api.example.com/x")),
            Err(Refusal::NotHttps)
        );
        assert_eq!(
            none.check_url(&url("https://user:pw@api.example.com/")),
            Err(Refusal::Credentials)
        );
        assert_eq!(
            none.check_url(&url("https://127.0.0.1/")),
            Err(Refusal::NonPublic(ip("127.0.0.1")))
        );
        assert!(none.check_url(&url("https://[::ffff:10.0.0.1]/")).is_err());
        assert!(none.check_url(&url("ftp://api.example.com/")).is_err());

        let local = AllowList::parse("127.0.0.1,hooks.internal").unwrap();
        assert_eq!(local.check_url(&url("http://127.0.0.1:8080/")), Ok(()));
        assert_eq!(local.check_url(&url("http://hooks.internal/")), Ok(()));
        assert!(local.permits(Some("hooks.internal"), ip("10.0.0.7")));
        assert!(!local.permits(Some("other.internal"), ip("10.0.0.7")));
    }
}
