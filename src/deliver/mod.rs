//! Outbound SMTP: connect to a destination's MX hosts in order, greet, upgrade with
//! STARTTLS when offered, and send messages over the same connection (RFC 5321 §3, §4).
//!
//! The protocol decisions live in `homing_smtp::client`; this module only moves bytes and
//! applies the RFC 5321 §4.5.3.2 timeouts.

pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homing_explain::{Evidence, ReplyEvidence, Stage};
use homing_smtp::address::{parse_path, parse_reverse_path};
use homing_smtp::{
    Address, AddressOptions, Body, Capabilities, ClientTransaction, Command, MailParams, Orcpt, RcptParams,
    Reply, ReplyParser, Ret, ReversePath, Step, TransactionOutcome, dot_stuff,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

use crate::route::MxHost;
use tls::{ClientTls, TlsInfo};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Settings for outbound sessions.
pub struct Client {
    /// Connections per MX address: many domains may share one provider's hosts, and the
    /// per-domain limit alone would let them pile onto it (ARCHITECTURE invariant 4).
    pub host_slots: HostSlots,
    pub helo: String,
    pub port: u16,
    pub source: Option<IpAddr>,
    pub tls: Option<Arc<ClientTls>>,
    pub connect_timeout: Duration,
    pub greeting_timeout: Duration,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
}

/// A connection limit per remote IP address.
pub struct HostSlots {
    limit: usize,
    slots: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl HostSlots {
    pub fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), slots: Mutex::new(HashMap::new()) }
    }

    /// A free connection slot to `ip`, or `None` when all are taken; the slot is freed
    /// when the permit drops. Never waits: a worker waiting here would hold its domain's
    /// and the global connection slots while other destinations starve.
    fn try_acquire(&self, ip: IpAddr) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Forget idle hosts so the map does not grow without bound.
            if map.len() > 10_000 {
                map.retain(|_, s| s.available_permits() < self.limit);
            }
            map.entry(ip).or_insert_with(|| Arc::new(Semaphore::new(self.limit))).clone()
        };
        sem.try_acquire_owned().ok()
    }
}

/// Why no session could be opened.
pub enum ConnectError {
    /// Every address is at `max_connections_per_host`: try again shortly; not an attempt.
    Busy,
    /// Every host failed; the evidence of the last one tried.
    Failed(Box<Evidence>),
}

/// An open, greeted session with one MX host.
pub struct Session {
    _slot: Option<OwnedSemaphorePermit>,
    io: Box<dyn Io>,
    parser: ReplyParser,
    caps: Capabilities,
    pub host: String,
    pub ip: IpAddr,
    pub tls: Option<TlsInfo>,
    /// Why this session is in plaintext although the server offered STARTTLS.
    pub tls_fallback: Option<String>,
    command_timeout: Duration,
    data_timeout: Duration,
    domain: String,
}

/// A message to send, as the spool holds it.
pub struct OutMessage<'a> {
    pub return_path: &'a str,
    /// Address, DSN NOTIFY bits (spool encoding), ORCPT.
    pub rcpts: Vec<(&'a str, u8, Option<&'a str>)>,
    pub envid: Option<&'a str>,
    pub ret_full: Option<bool>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub body: &'a [u8],
}

/// What the transaction needs: sender, its parameters, and each recipient with its own.
type Envelope = (ReversePath, MailParams, Vec<(Address, RcptParams)>);

/// A recipient's result: the reply that decided it and the stage it came at.
#[derive(Debug, Clone)]
pub struct RcptResult {
    pub stage: Stage,
    pub reply: Reply,
}

impl Client {
    /// Tries each host and address in order until one greets and accepts EHLO/HELO. A
    /// connection failure or a 4xx/5xx greeting moves on to the next (RFC 5321 §5.1).
    /// On total failure, returns the evidence of the last host tried.
    pub async fn connect(&self, domain: &str, hosts: &[MxHost]) -> Result<Session, ConnectError> {
        let mut last = Box::new(Evidence::bare(Stage::Connect, domain));
        last.network = Some("no address to connect to".into());
        let mut tried = false;
        // A host that failed temporarily might still take the mail: it outranks a 5xx from
        // another host, so the message is deferred rather than bounced (as Postfix does).
        let mut temporary: Option<Box<Evidence>> = None;
        for host in hosts {
            for ip in &host.addrs {
                let Some(slot) = self.host_slots.try_acquire(*ip) else { continue };
                tried = true;
                match self.open(domain, host, *ip, true, slot).await {
                    Ok(s) => return Ok(s),
                    // Opportunistic TLS (RFC 7435 §3): a failed handshake must not stop
                    // delivery; try the same host again in plaintext, as Postfix does.
                    Err(e) if e.stage == Stage::StartTls && self.tls.is_some() => {
                        let why = e.tls.clone().unwrap_or_default();
                        let Some(slot) = self.host_slots.try_acquire(*ip) else { continue };
                        match self.open(domain, host, *ip, false, slot).await {
                            Ok(mut s) => {
                                s.tls_fallback =
                                    Some(format!("none: STARTTLS failed ({why}); sent in plaintext"));
                                return Ok(s);
                            }
                            Err(e) => last = note_failure(&mut temporary, e),
                        }
                    }
                    Err(e) => last = note_failure(&mut temporary, e),
                }
            }
        }
        Err(if tried { ConnectError::Failed(temporary.unwrap_or(last)) } else { ConnectError::Busy })
    }

    async fn open(
        &self,
        domain: &str,
        host: &MxHost,
        ip: IpAddr,
        starttls: bool,
        slot: OwnedSemaphorePermit,
    ) -> Result<Session, Box<Evidence>> {
        let mut ev = Evidence::bare(Stage::Connect, domain);
        ev.remote_host = Some(host.name.clone());
        ev.remote_ip = Some(ip.to_string());
        let addr = SocketAddr::new(ip, self.port);
        let stream = match timeout(self.connect_timeout, self.dial(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                ev.network = Some(e.to_string());
                return Err(Box::new(ev));
            }
            Err(_) => {
                ev.network = Some(format!("connection timed out after {}s", self.connect_timeout.as_secs()));
                return Err(Box::new(ev));
            }
        };
        let _ = stream.set_nodelay(true);
        let mut s = Session {
            _slot: Some(slot),
            io: Box::new(stream),
            parser: ReplyParser::new(),
            caps: Capabilities::default(),
            host: host.name.clone(),
            ip,
            tls: None,
            tls_fallback: None,
            command_timeout: self.command_timeout,
            data_timeout: self.data_timeout,
            domain: domain.to_string(),
        };
        let greeting = s.read_reply(Stage::Greeting, self.greeting_timeout).await?;
        if !greeting.is_positive() {
            return Err(s.refused(Stage::Greeting, &greeting));
        }
        s.hello(&self.helo).await?;
        if let Some(tls) = self.tls.as_ref().filter(|_| starttls && s.caps.starttls) {
            s.starttls(tls, &self.helo).await?;
        }
        Ok(s)
    }

    async fn dial(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(src) = self.source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(src, 0))?;
        }
        socket.connect(addr).await
    }
}

impl Session {
    fn evidence(&self, stage: Stage) -> Evidence {
        let mut ev = Evidence::bare(stage, &self.domain);
        ev.remote_host = Some(self.host.clone());
        ev.remote_ip = Some(self.ip.to_string());
        // `Evidence::tls` is for TLS *failures*; a working TLS session is reported with the
        // attempt, not as evidence against it.
        ev
    }

    fn refused(&self, stage: Stage, reply: &Reply) -> Box<Evidence> {
        let mut ev = self.evidence(stage);
        ev.reply = Some(ReplyEvidence::from(reply));
        Box::new(ev)
    }

    fn broken(&self, stage: Stage, what: String) -> Box<Evidence> {
        let mut ev = self.evidence(stage);
        ev.network = Some(what);
        Box::new(ev)
    }

    async fn read_reply(&mut self, stage: Stage, wait: Duration) -> Result<Reply, Box<Evidence>> {
        let mut buf = [0u8; 8192];
        loop {
            match self.parser.next_reply() {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(self.broken(stage, format!("malformed reply from the server: {e}"))),
            }
            let n = match timeout(wait, self.io.read(&mut buf)).await {
                Ok(Ok(0)) => return Err(self.broken(stage, "the server closed the connection".into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(self.broken(stage, format!("read error: {e}"))),
                Err(_) => {
                    return Err(self
                        .broken(stage, format!("no reply within {}s (RFC 5321 §4.5.3.2)", wait.as_secs())));
                }
            };
            self.parser.push(&buf[..n]);
        }
    }

    /// Writes in chunks, each with its own timeout: RFC 5321 §4.5.3.2.5 times each send
    /// of message data, not the whole message, which may be large on a slow link.
    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), Box<Evidence>> {
        let wait = self.command_timeout;
        for chunk in bytes.chunks(64 * 1024) {
            match timeout(wait, self.io.write_all(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.broken(stage, format!("write error: {e}"))),
                Err(_) => {
                    return Err(self.broken(stage, format!("could not send within {}s", wait.as_secs())));
                }
            }
        }
        match timeout(wait, self.io.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.broken(stage, format!("write error: {e}"))),
            Err(_) => Err(self.broken(stage, format!("could not send within {}s", wait.as_secs()))),
        }
    }

    async fn command(&mut self, stage: Stage, cmd: &Command) -> Result<Reply, Box<Evidence>> {
        self.write(stage, &cmd.to_wire()).await?;
        self.read_reply(stage, self.command_timeout).await
    }

    /// EHLO, falling back to HELO when the server does not know EHLO (RFC 5321 §3.2).
    async fn hello(&mut self, helo: &str) -> Result<(), Box<Evidence>> {
        let r = self.command(Stage::Ehlo, &Command::Ehlo(helo.to_string())).await?;
        if r.is_positive() {
            self.caps = Capabilities::from_ehlo(&r);
            return Ok(());
        }
        let r = self.command(Stage::Ehlo, &Command::Helo(helo.to_string())).await?;
        if !r.is_positive() {
            return Err(self.refused(Stage::Ehlo, &r));
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// RFC 3207: STARTTLS, handshake, and EHLO again. A failed handshake loses the
    /// connection; the caller tries the next host.
    async fn starttls(&mut self, tls: &ClientTls, helo: &str) -> Result<(), Box<Evidence>> {
        let r = self.command(Stage::StartTls, &Command::StartTls).await?;
        if !r.is_positive() {
            // Opportunistic: the server offered but refused; carry on in plaintext.
            return Ok(());
        }
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(self.ip.into()));
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let plain: Box<dyn Io> = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        let stream = match timeout(self.command_timeout, connector.connect(name, plain)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(self.tls_failed(format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(self.tls_failed("TLS handshake timed out".into())),
        };
        self.tls = Some(tls.describe(stream.get_ref().1, &self.host));
        self.io = Box::new(stream);
        self.parser = ReplyParser::new();
        let r = self.command(Stage::Ehlo, &Command::Ehlo(helo.to_string())).await?;
        if !r.is_positive() {
            return Err(self.refused(Stage::Ehlo, &r));
        }
        self.caps = Capabilities::from_ehlo(&r);
        Ok(())
    }

    fn tls_failed(&self, what: String) -> Box<Evidence> {
        let mut ev = self.evidence(Stage::StartTls);
        ev.tls = Some(what.clone());
        ev.network = Some(what);
        Box::new(ev)
    }

    /// Sends one message. `Ok` gives each recipient's deciding reply; `Err` means the
    /// connection broke and every recipient's fate is unknown (the caller defers them).
    pub async fn send(&mut self, msg: &OutMessage<'_>) -> Result<Vec<RcptResult>, Box<Evidence>> {
        if let Some(limit) = self.caps.size.filter(|&l| l > 0 && msg.body.len() as u64 > l) {
            let r = Reply::new(
                552,
                "5.3.4".parse().ok(),
                format!(
                    "homing did not send: the message is {} bytes and {} accepts at most {} (SIZE, RFC 1870)",
                    msg.body.len(),
                    self.host,
                    limit
                ),
            );
            return Ok(msg
                .rcpts
                .iter()
                .map(|_| RcptResult { stage: Stage::Mail, reply: r.clone() })
                .collect());
        }
        if msg.smtputf8 && !self.caps.smtputf8 {
            let r = Reply::new(
                553,
                "5.6.7".parse().ok(),
                format!(
                    "homing did not send: the message needs SMTPUTF8 and {} does not offer it (RFC 6531 §3.4)",
                    self.host
                ),
            );
            return Ok(msg
                .rcpts
                .iter()
                .map(|_| RcptResult { stage: Stage::Mail, reply: r.clone() })
                .collect());
        }
        let (from, mail_params, rcpts) = self.envelope(msg)?;
        let mut tx = ClientTransaction::new(from, mail_params, rcpts, self.caps.pipelining);
        let mut stage = Stage::Mail;
        loop {
            let out = tx.commands();
            if !out.is_empty() {
                self.write(stage, &out).await?;
            }
            let wait = if matches!(stage, Stage::Dot) { self.data_timeout } else { self.command_timeout };
            let reply = self.read_reply(stage, wait).await?;
            match tx.on_reply(reply).map_err(|e| self.broken(stage, format!("protocol error: {e}")))? {
                Step::Send | Step::Wait => {}
                Step::SendBody => {
                    stage = Stage::Dot;
                    let body = dot_stuff(msg.body);
                    self.write(Stage::Data, &body).await?;
                }
                Step::Done(outcome) => {
                    if outcome.needs_rset {
                        let _ = self.command(Stage::Mail, &Command::Rset).await;
                    }
                    return Ok((0..msg.rcpts.len()).map(|i| deciding(&outcome, i)).collect());
                }
            }
        }
    }

    fn envelope(&self, msg: &OutMessage<'_>) -> Result<Envelope, Box<Evidence>> {
        let opts = AddressOptions { utf8: true };
        let from = if msg.return_path.is_empty() {
            ReversePath::Null
        } else {
            parse_reverse_path(&format!("<{}>", msg.return_path), opts)
                .map_err(|e| self.broken(Stage::Mail, format!("stored sender is not an address: {e}")))?
        };
        let dsn = self.caps.dsn;
        let mail_params = MailParams {
            size: self.caps.size.map(|_| msg.body.len() as u64),
            body: if msg.body_8bit && self.caps.eight_bit_mime { Body::EightBitMime } else { Body::SevenBit },
            smtputf8: msg.smtputf8,
            ret: if dsn { msg.ret_full.map(|f| if f { Ret::Full } else { Ret::Headers }) } else { None },
            envid: if dsn { msg.envid.map(str::to_string) } else { None },
            auth: None,
        };
        let mut rcpts = Vec::with_capacity(msg.rcpts.len());
        for (addr, notify, orcpt) in &msg.rcpts {
            let a = parse_path(&format!("<{addr}>"), opts)
                .map_err(|e| self.broken(Stage::Rcpt, format!("stored recipient is not an address: {e}")))?;
            let params = RcptParams {
                notify: if dsn { crate::outcome::notify_from_bits(*notify) } else { Default::default() },
                orcpt: if dsn { orcpt.and_then(parse_orcpt) } else { None },
            };
            rcpts.push((a, params));
        }
        Ok((from, mail_params, rcpts))
    }

    /// Whether the server takes DSN parameters (RFC 3461), which homing then passes on.
    pub fn offers_dsn(&self) -> bool {
        self.caps.dsn
    }

    /// QUIT politely; errors do not matter any more.
    pub async fn quit(mut self) {
        let _ = timeout(Duration::from_secs(5), self.command(Stage::Mail, &Command::Quit)).await;
        let _ = self.io.shutdown().await;
    }
}

/// Keeps the latest temporary failure aside; returns the evidence as the latest failure.
fn note_failure(temporary: &mut Option<Box<Evidence>>, e: Box<Evidence>) -> Box<Evidence> {
    if e.reply.as_ref().is_none_or(|r| r.code < 500) {
        *temporary = Some(e.clone());
    }
    e
}

/// The reply that decided recipient `i` and the stage it came at.
fn deciding(outcome: &TransactionOutcome, i: usize) -> RcptResult {
    let stage = if !outcome.mail.is_positive() {
        Stage::Mail
    } else if outcome.rcpt.get(i).and_then(|r| r.as_ref()).is_some_and(|r| !r.is_positive()) {
        Stage::Rcpt
    } else if outcome.data.as_ref().is_some_and(|r| r.code == 354 || !r.is_positive()) {
        Stage::Data
    } else {
        Stage::Dot
    };
    let reply = outcome.recipient_result(i).cloned().unwrap_or_else(|| outcome.mail.clone());
    RcptResult { stage, reply }
}

fn parse_orcpt(s: &str) -> Option<Orcpt> {
    let (t, a) = s.split_once(';')?;
    Some(Orcpt { addr_type: t.trim().to_string(), addr: a.trim().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gets_no_more_connections_than_its_limit() {
        let slots = HostSlots::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = slots.try_acquire(ip);
        let b = slots.try_acquire(ip);
        assert!(a.is_some() && b.is_some());
        assert!(slots.try_acquire(ip).is_none(), "no third connection to one host");
        assert!(slots.try_acquire(other).is_some(), "another host is not held up");
        drop(a);
        assert!(slots.try_acquire(ip).is_some(), "a freed slot is reused");
    }
}
