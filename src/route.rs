//! Where mail for a domain goes: MX lookup per RFC 5321 §5.1, with null MX (RFC 7505).
//!
//! The outcome is either an ordered list of hosts to try, or a [`RouteError`] that says
//! whether the failure is permanent (the domain does not exist, accepts no mail, or loops
//! back to us) or temporary (DNS trouble).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};

use homing_explain::DnsEvidence;

/// One MX host with the addresses to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// Why no host could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the domain {0} does not exist (DNS NXDOMAIN)")]
    NxDomain(String),
    #[error("the domain {0} publishes a null MX: it accepts no mail (RFC 7505)")]
    NullMx(String),
    #[error("the domain {0} has no MX record and no address record, so there is no host to deliver to")]
    NoMailHost(String),
    #[error("DNS lookup for {0} failed temporarily: {1}")]
    TempFail(String, String),
    #[error("mail for {0} loops back to this server: {1}")]
    Loop(String, String),
}

impl RouteError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, RouteError::TempFail(..))
    }

    /// The DNS evidence the explanation engine classifies.
    pub fn evidence(&self) -> DnsEvidence {
        match self {
            RouteError::NxDomain(_) => DnsEvidence::NxDomain,
            RouteError::NullMx(_) => DnsEvidence::NullMx,
            RouteError::NoMailHost(_) => DnsEvidence::NoMailHost,
            RouteError::TempFail(_, why) => DnsEvidence::TempFail(why.clone()),
            RouteError::Loop(_, why) => DnsEvidence::MailLoop(why.clone()),
        }
    }
}

/// Resolves destinations. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    resolver: TokioResolver,
    /// Our own listening sockets and names: an MX that is us means a loop (RFC 5321 §5.1).
    own_addrs: Vec<SocketAddr>,
    own_name: String,
    port: u16,
}

impl Router {
    pub fn new(
        servers: &[SocketAddr],
        timeout: Duration,
        attempts: usize,
        own_addrs: Vec<SocketAddr>,
        own_name: String,
        port: u16,
    ) -> anyhow::Result<Router> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = attempts;
        opts.ndots = 0;
        opts.cache_size = 4096;
        let builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| {
                anyhow::anyhow!("cannot read the system resolver configuration ({e}); set dns.servers")
            })?
        } else {
            let mut rc = ResolverConfig::new();
            for s in servers {
                rc.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
                rc.add_name_server(NameServerConfig::new(*s, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(rc, TokioConnectionProvider::default())
        };
        let resolver = builder.with_options(opts).build();
        Ok(Router { resolver, own_addrs, own_name: own_name.to_ascii_lowercase(), port })
    }

    /// The hosts to try for `domain`, best first (RFC 5321 §5.1).
    pub async fn route(&self, domain: &str) -> Result<Vec<MxHost>, RouteError> {
        if let Some(ip) = address_literal(domain) {
            let host = MxHost { name: domain.to_string(), preference: 0, addrs: vec![ip] };
            return self.drop_self(domain, vec![host]);
        }
        let name = format!("{}.", domain.trim_end_matches('.'));
        let mx: Vec<(u16, String)> = match self.resolver.mx_lookup(name.as_str()).await {
            Ok(l) => {
                l.iter().map(|mx| (mx.preference(), mx.exchange().to_ascii().to_ascii_lowercase())).collect()
            }
            Err(e) => match failure(&e) {
                Failure::NxDomain => return Err(RouteError::NxDomain(domain.to_string())),
                Failure::NoRecords => Vec::new(),
                Failure::Temporary => return Err(temp(domain, &e)),
            },
        };
        let ordered = match order_mx(mx) {
            MxAnswer::Null => return Err(RouteError::NullMx(domain.to_string())),
            // RFC 5321 §5.1: no MX → the domain itself is the implicit MX.
            MxAnswer::None => vec![(0, name.clone())],
            MxAnswer::Hosts(h) => h,
        };
        let mut hosts = Vec::with_capacity(ordered.len());
        let mut all_nx = true;
        let mut last_temp = None;
        for (preference, host) in ordered {
            match self.resolver.lookup_ip(host.as_str()).await {
                Ok(ips) => {
                    all_nx = false;
                    let addrs: Vec<IpAddr> = ips.iter().collect();
                    let name = host.trim_end_matches('.').to_string();
                    hosts.push(MxHost { name, preference, addrs });
                }
                Err(e) if failure(&e) != Failure::Temporary => {}
                Err(e) => {
                    all_nx = false;
                    last_temp = Some(temp(&host, &e));
                }
            }
        }
        if hosts.is_empty() {
            return Err(match last_temp {
                Some(t) if !all_nx => t,
                _ => RouteError::NoMailHost(domain.to_string()),
            });
        }
        self.drop_self(domain, hosts)
    }

    /// RFC 5321 §5.1: if we are one of the MX hosts, only hosts preferred over us may be
    /// used; if we are the best, the mail loops.
    fn drop_self(&self, domain: &str, hosts: Vec<MxHost>) -> Result<Vec<MxHost>, RouteError> {
        let is_self = |h: &MxHost| {
            h.name.eq_ignore_ascii_case(&self.own_name)
                || h.addrs.iter().any(|ip| self.is_own(SocketAddr::new(*ip, self.port)))
        };
        let Some(own_pref) = hosts.iter().filter(|h| is_self(h)).map(|h| h.preference).min() else {
            return Ok(hosts);
        };
        let better: Vec<MxHost> = hosts.into_iter().filter(|h| h.preference < own_pref).collect();
        if better.is_empty() {
            return Err(RouteError::Loop(
                domain.to_string(),
                format!("the best MX host of {domain} is this server ({})", self.own_name),
            ));
        }
        Ok(better)
    }

    fn is_own(&self, target: SocketAddr) -> bool {
        self.own_addrs.iter().any(|own| {
            own.port() == target.port()
                && (own.ip() == target.ip()
                    || (own.ip().is_unspecified()
                        && (target.ip().is_loopback() || target.ip().is_unspecified())))
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// RCODE 3: the name does not exist.
    NxDomain,
    /// The name exists but has no records of the type asked for (NOERROR, empty answer).
    NoRecords,
    /// SERVFAIL, REFUSED, timeouts, network errors: ask again later.
    Temporary,
}

/// hickory reports SERVFAIL and REFUSED answers as "no records found" carrying the
/// response code; only NOERROR and NXDOMAIN are answers we may act on for good.
fn failure(e: &ResolveError) -> Failure {
    use hickory_resolver::proto::ProtoErrorKind;
    use hickory_resolver::proto::op::ResponseCode;
    let Some(proto) = e.proto() else { return Failure::Temporary };
    match proto.kind() {
        ProtoErrorKind::NoRecordsFound { response_code: ResponseCode::NXDomain, .. } => Failure::NxDomain,
        ProtoErrorKind::NoRecordsFound { response_code: ResponseCode::NoError, .. } => Failure::NoRecords,
        _ => Failure::Temporary,
    }
}

fn temp(name: &str, e: &ResolveError) -> RouteError {
    RouteError::TempFail(name.trim_end_matches('.').to_string(), e.to_string())
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner.strip_prefix("IPv6:").or_else(|| inner.strip_prefix("ipv6:")).unwrap_or(inner);
    inner.parse().ok()
}

#[derive(Debug, PartialEq, Eq)]
enum MxAnswer {
    None,
    Null,
    Hosts(Vec<(u16, String)>),
}

/// Sorts by preference, shuffling hosts of equal preference (RFC 5321 §5.1), and spots a
/// null MX (RFC 7505 §3: a single MX whose exchange is the root).
fn order_mx(mut mx: Vec<(u16, String)>) -> MxAnswer {
    let is_root = |h: &str| h == "." || h.is_empty();
    if mx.is_empty() {
        return MxAnswer::None;
    }
    if mx.iter().all(|(_, h)| is_root(h)) {
        return MxAnswer::Null;
    }
    // LENIENT: a null MX beside real ones violates RFC 7505 §3; use the real ones.
    mx.retain(|(_, h)| !is_root(h));
    fastrand::shuffle(&mut mx);
    mx.sort_by_key(|(p, _)| *p);
    MxAnswer::Hosts(mx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_order_and_null_mx() {
        assert_eq!(order_mx(vec![]), MxAnswer::None);
        assert_eq!(order_mx(vec![(0, ".".into())]), MxAnswer::Null);
        let MxAnswer::Hosts(h) = order_mx(vec![(20, "b.".into()), (10, "a.".into()), (0, ".".into())]) else {
            panic!("expected hosts")
        };
        assert_eq!(h, vec![(10, "a.".to_string()), (20, "b.".to_string())]);
        // equal preferences come out in both orders over many tries
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            if let MxAnswer::Hosts(h) = order_mx(vec![(10, "x.".into()), (10, "y.".into())]) {
                seen.insert(h[0].1.clone());
            }
        }
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn literals() {
        assert_eq!(address_literal("[127.0.0.1]"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(address_literal("[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(address_literal("example.com"), None);
    }
}
