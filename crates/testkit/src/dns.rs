//! An in-process authoritative DNS server serving real zones, for tests.
//!
//! Zones are master-file text (RFC 1035 §5) parsed by hickory's zone parser and
//! served by hickory-server over UDP and TCP on the same loopback port, on the
//! caller's tokio runtime. Besides the zones, a test can mark names that answer
//! SERVFAIL (a broken zone) or that are never answered (an unreachable server).
//!
//! As a real authoritative server does, it answers REFUSED for names under no
//! loaded zone. To get NXDOMAIN for every unknown name of a TLD, load an empty
//! parent zone: [`TestDnsBuilder::empty_zone`]`("test.")`.
//!
//! DEVIATION (hickory-server's, kept): a UDP answer is truncated (TC) past the
//! client's EDNS payload size, or past 4096 bytes for a query without EDNS, where
//! RFC 1035 §4.2.1 says 512. To test the fall-back to TCP, query with EDNS 512 or
//! serve an RRset larger than the resolver's payload size.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::txt::Parser;
use hickory_server::ServerFuture;
use hickory_server::authority::{AuthorityObject, Catalog, MessageResponseBuilder, ZoneType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryAuthority;
use tokio::net::{TcpListener, UdpSocket};

/// A TCP connection that sends no query for this long is closed by the server.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often to retry finding a port free for both UDP and TCP.
const PORT_ATTEMPTS: usize = 32;

/// The standard header of a test zone: `$ORIGIN`, `$TTL 60`, an SOA and an NS record.
///
/// `origin` may be given with or without the trailing dot.
///
/// ```
/// let zone = homing_testkit::dns::zone_header("example.test.") + "@ MX 10 mx1\nmx1 A 127.0.0.21\n";
/// assert!(zone.starts_with("$ORIGIN example.test.\n"));
/// ```
pub fn zone_header(origin: &str) -> String {
    let origin = fqdn(origin);
    format!(
        "$ORIGIN {origin}\n\
         $TTL 60\n\
         @ SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60\n\
         @ NS ns.{origin}\n"
    )
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}

/// A running DNS server; dropping it stops it.
pub struct TestDns {
    /// Where it serves, UDP and TCP on the same port.
    pub addr: SocketAddr,
    server: ServerFuture<Handler>,
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns").field("addr", &self.addr).finish()
    }
}

impl TestDns {
    /// Serves `zones` (master-file text, each with `$ORIGIN`, `$TTL` and an SOA) on 127.0.0.1.
    ///
    /// Returns once the UDP and TCP sockets are bound.
    pub async fn start(zones: &[&str]) -> io::Result<TestDns> {
        zones.iter().fold(TestDns::builder(), |b, z| b.zone(*z)).start().await
    }

    /// A server with more than zones: SERVFAIL and unanswered names, another address.
    pub fn builder() -> TestDnsBuilder {
        TestDnsBuilder::default()
    }

    /// Stops serving and waits until the server's tasks have ended.
    pub async fn shutdown(mut self) {
        // The tasks end on cancellation; their results say nothing a test needs.
        let _ = self.server.shutdown_gracefully().await;
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        // Dropping the ServerFuture aborts its tasks too; cancelling first lets
        // them leave their loops cleanly if they are running right now.
        self.server.shutdown_token().cancel();
    }
}

/// Configures a [`TestDns`]; see [`TestDns::builder`].
#[derive(Debug, Clone)]
pub struct TestDnsBuilder {
    zones: Vec<String>,
    servfail: Vec<String>,
    blackhole: Vec<String>,
    ip: IpAddr,
    port: u16,
}

impl Default for TestDnsBuilder {
    fn default() -> Self {
        TestDnsBuilder {
            zones: Vec::new(),
            servfail: Vec::new(),
            blackhole: Vec::new(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
        }
    }
}

impl TestDnsBuilder {
    /// Adds a zone in master-file text with `$ORIGIN`, `$TTL` and an SOA.
    pub fn zone(mut self, text: impl Into<String>) -> Self {
        self.zones.push(text.into());
        self
    }

    /// Adds a zone holding only its SOA and NS, so that every other name under
    /// `origin` is NXDOMAIN (instead of REFUSED for a name under no zone).
    pub fn empty_zone(self, origin: &str) -> Self {
        self.zone(zone_header(origin))
    }

    /// Every query for `name` or a name under it is answered SERVFAIL, as a
    /// server does for a zone it failed to load.
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.push(name.to_owned());
        self
    }

    /// Queries for `name` or a name under it are never answered, so the client times out.
    pub fn blackhole(mut self, name: &str) -> Self {
        self.blackhole.push(name.to_owned());
        self
    }

    /// The address to serve on; 127.0.0.1 unless told.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// The port to serve on; a free one (the same for UDP and TCP) unless told.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Parses the zones, binds the sockets and starts serving on the current tokio runtime.
    ///
    /// A zone that does not parse is an `InvalidData` error naming the zone and the cause.
    pub async fn start(self) -> io::Result<TestDns> {
        let handler = Handler {
            catalog: catalog(&self.zones)?,
            servfail: names(&self.servfail)?,
            blackhole: names(&self.blackhole)?,
        };
        let (udp, tcp) = bind_pair(self.ip, self.port).await?;
        let addr = udp.local_addr()?;
        let mut server = ServerFuture::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT);
        Ok(TestDns { addr, server })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn catalog(zones: &[String]) -> io::Result<Catalog> {
    let mut catalog = Catalog::new();
    let mut seen = HashSet::new();
    for (i, text) in zones.iter().enumerate() {
        let (origin, records) = Parser::new(text.as_str(), None, None)
            .parse()
            .map_err(|e| invalid(format!("zone #{} ({}) does not parse: {e}", i + 1, first_line(text))))?;
        if !seen.insert(LowerName::new(&origin)) {
            return Err(invalid(format!("zone {origin} is given twice; merge the two texts")));
        }
        let authority = InMemoryAuthority::new(origin.clone(), records, ZoneType::Primary, false)
            .map_err(|e| invalid(format!("zone {origin} cannot be served: {e}")))?;
        let authority: Arc<dyn AuthorityObject> = Arc::new(authority);
        catalog.upsert(LowerName::new(&origin), vec![authority]);
    }
    Ok(catalog)
}

fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with(';')).unwrap_or("empty text")
}

fn names(names: &[String]) -> io::Result<Vec<LowerName>> {
    names
        .iter()
        .map(|n| {
            Name::from_ascii(n)
                .map(|name| LowerName::new(&name))
                .map_err(|e| invalid(format!("{n:?} is not a domain name: {e}")))
        })
        .collect()
}

/// Binds UDP and TCP on one port: a resolver retries over TCP at the same address
/// when a UDP answer is truncated (RFC 7766 §5).
async fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let udp = UdpSocket::bind((ip, port)).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // The UDP port was free but the TCP one is taken: try another, unless fixed.
            Err(e) if port == 0 && e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// Answers from the catalog, except for the SERVFAIL and unanswered names.
struct Handler {
    catalog: Catalog,
    servfail: Vec<LowerName>,
    blackhole: Vec<LowerName>,
}

impl Handler {
    fn under(list: &[LowerName], name: &LowerName) -> bool {
        list.iter().any(|zone| zone.zone_of(name))
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let name = request.request_info().ok().map(|info| info.query.name().clone());
        if let Some(name) = name {
            if Self::under(&self.blackhole, &name) {
                // No answer at all: the header returned here is only for the server's logs.
                return ResponseInfo::from(*request.header());
            }
            if Self::under(&self.servfail, &name) {
                let mut builder = MessageResponseBuilder::from_message_request(request);
                if let Some(req_edns) = request.edns() {
                    let mut edns = Edns::new();
                    edns.set_max_payload(req_edns.max_payload().max(512));
                    builder.edns(edns);
                }
                let response = builder.error_msg(request.header(), ResponseCode::ServFail);
                return match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => ResponseInfo::from(*request.header()),
                };
            }
        }
        self.catalog.handle_request(request, response_handle).await
    }
}
