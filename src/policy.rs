//! Who may send what through homing. homing is never an open relay: a client outside
//! `relay.networks` that did not authenticate (RFC 4954) may not send to other domains
//! (RFC 5321 §3.6.2 lets a server refuse).

use std::net::IpAddr;

use homing_smtp::{Cause, Reply};

/// An IP network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a network: write an address and a prefix length, e.g. \"192.0.2.0/24\" or \"2001:db8::/32\""
)]
pub struct BadCidr(String);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub ip: IpAddr,
    /// The login of a successful AUTH in this session.
    pub login: Option<&'a str>,
}

/// The relay decision for one session: computed once from the client's address.
#[derive(Debug, Clone)]
pub struct RelayPolicy {
    networks: Vec<Cidr>,
}

impl RelayPolicy {
    /// Networks were validated with the config; any that fail to parse are skipped.
    pub fn new(networks: &[String]) -> Self {
        Self { networks: networks.iter().filter_map(|n| Cidr::parse(n).ok()).collect() }
    }

    pub fn may_relay(&self, client: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(client))
    }

    /// The reply to RCPT TO for `domain` from `client`: `None` accepts. An authenticated
    /// client may relay from anywhere (RFC 6409 §4.3: submission is for the server's own
    /// users); an unauthenticated one only from `relay.networks`.
    pub fn check_recipient(&self, client: &Client<'_>, domain: &str) -> Option<Reply> {
        if client.login.is_some() || self.may_relay(client.ip) {
            None
        } else {
            Some(Cause::RelayDenied { domain: domain.to_string() }.reply())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let n = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(n.contains("127.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        let z = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(z.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "x/8", "::/129", "10.0.0.0/"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_listed_networks_relay() {
        let p = RelayPolicy::new(&["127.0.0.0/8".into()]);
        let client = |ip: &str, login| Client { ip: ip.parse().unwrap(), login };
        assert!(p.check_recipient(&client("127.0.0.1", None), "example.com").is_none());
        let r = p.check_recipient(&client("192.0.2.1", None), "example.com").unwrap();
        assert_eq!(r.code, 554);
        assert!(p.check_recipient(&client("192.0.2.1", Some("alice")), "example.com").is_none());
    }
}
