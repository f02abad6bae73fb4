//! Accepting mail: listeners, and the tokio glue around `homing_smtp::server`.
//!
//! The session state machine decides every reply; this module moves bytes, applies the
//! RFC 5321 §4.5.3.2 timeouts, performs the TLS handshakes (STARTTLS, or at once on an
//! implicit-TLS port), checks AUTH credentials (`auth.rs`), asks the policy about
//! recipients, and hands complete messages to the spool, replying `250` only once the
//! message is on disk.

pub mod accept;
mod auth;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use homing_smtp::{Action, Address, Cause, Reply, ServerConfig, ServerSession, Wait};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::accounts::Accounts;
use crate::config::ListenerMode;
use crate::policy::RelayPolicy;
use crate::suppress::SuppressionList;
use accept::Acceptor;
use tls::ListenerTls;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Everything a session needs, shared by all sessions of all listeners.
pub struct Context {
    pub policy: RelayPolicy,
    /// The user store, for AUTH.
    pub accounts: Arc<Accounts>,
    /// Bounds the password checks running at once (`accounts.max_parallel_verifications`).
    pub verifications: Arc<Semaphore>,
    /// `None` when `[suppression] enabled = false`.
    pub suppression: Option<Arc<SuppressionList>>,
    pub acceptor: Acceptor,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub sessions: Arc<Semaphore>,
    pub max_sessions: usize,
}

/// What one `[[listener]]` is.
pub struct Listener {
    /// The configured address, for logs.
    pub label: String,
    pub mode: ListenerMode,
    /// The session options on this listener (limits, STARTTLS, implicit TLS, AUTH).
    pub smtp: ServerConfig,
    /// `None` when the listener does no TLS.
    pub tls: Option<Arc<ListenerTls>>,
    /// This listener's own session limit, within `Context::sessions`.
    pub sessions: Option<(Arc<Semaphore>, usize)>,
}

/// Accepts connections on `socket` until the task is dropped.
pub async fn serve(ctx: Arc<Context>, listener: Arc<Listener>, socket: TcpListener) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let listener = listener.clone();
        tokio::spawn(async move {
            let local = listener.sessions.as_ref().map(|(s, n)| (s.clone().try_acquire_owned(), *n));
            let (permit, limit, which) = match local {
                Some((Err(_), n)) => (None, n, "this listener's max_sessions"),
                _ => (ctx.sessions.clone().try_acquire_owned().ok(), ctx.max_sessions, "smtp.max_sessions"),
            };
            let Some(permit) = permit else {
                // An implicit-TLS client would not understand a plaintext 421: just close.
                if !listener.smtp.implicit_tls {
                    let mut stream = stream;
                    let _ = stream.write_all(&Cause::TooManySessions { limit }.reply().to_wire()).await;
                }
                tracing::warn!(%peer, listener = %listener.label, "too many sessions ({which}): connection refused");
                return;
            };
            session(&ctx, &listener, stream, peer).await;
            drop(permit);
            drop(local);
        });
    }
}

/// The TLS handshake on `io`, bounded by `wait`; `None` (logged with the peer) when it
/// fails or stalls.
async fn handshake(
    acceptor: TlsAcceptor,
    io: Box<dyn Io>,
    wait: Duration,
    peer: SocketAddr,
    listener: &str,
) -> Option<(Box<dyn Io>, String)> {
    match timeout(wait, acceptor.accept(io)).await {
        Ok(Ok(stream)) => {
            let (_, conn) = stream.get_ref();
            let desc = format!(
                "version={} cipher={}",
                conn.protocol_version().map(|v| format!("{v:?}").replace('_', ".")).unwrap_or_default(),
                conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default()
            );
            Some((Box::new(stream), desc))
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, listener, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, listener, "TLS handshake timed out");
            None
        }
    }
}

async fn session(ctx: &Context, listener: &Listener, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut smtp = listener.smtp.clone();
    smtp.starttls = smtp.starttls && listener.tls.is_some();
    let mut io: Box<dyn Io> = Box::new(stream);
    let mut tls_desc: Option<String> = None;
    tracing::debug!(%peer, listener = %listener.label, mode = ?listener.mode, "session start");
    if smtp.implicit_tls {
        // RFC 8314 §3.3: TLS first; the SMTP greeting comes inside it.
        let Some(tls) = listener.tls.as_ref() else { return };
        let Some((stream, desc)) =
            handshake(tls.acceptor(), io, ctx.command_timeout, peer, &listener.label).await
        else {
            return;
        };
        io = stream;
        tls_desc = Some(desc);
    }
    let mut s = ServerSession::new(smtp);
    let mut out = s.greeting().to_wire();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.next_action() {
            Action::Reply(r) => out.extend_from_slice(&r.to_wire()),
            Action::ReadMore => {
                if !flush(&mut io, &mut out, ctx.command_timeout).await {
                    return;
                }
                let wait = match s.waiting_for() {
                    Wait::Command => ctx.command_timeout,
                    Wait::Data => ctx.data_timeout,
                };
                match timeout(wait, io.read(&mut buf)).await {
                    Ok(Ok(0)) => return,
                    Ok(Ok(n)) => s.push_input(&buf[..n]),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "read error");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "session timed out (RFC 5321 §4.5.3.2)");
                        out.extend_from_slice(&s.timeout().to_wire());
                        flush(&mut io, &mut out, Duration::from_secs(5)).await;
                        return;
                    }
                }
            }
            Action::CheckSender { .. } => s.respond(Cause::SenderOk.reply()),
            Action::Authenticate { mechanism, login, password } => {
                match auth::check(ctx, peer, &listener.label, mechanism, login, password).await {
                    Ok(login) => s.accept_auth(login),
                    Err(refusal) => s.respond(refusal),
                }
            }
            Action::CheckRecipient { to, .. } => {
                let reply = check_recipient(ctx, peer, s.authenticated(), &to);
                s.respond(reply)
            }
            Action::Deliver(tx) => {
                let helo = s.helo_name().unwrap_or("").to_string();
                let reply = ctx.acceptor.accept(tx, peer, &helo, tls_desc.as_deref()).await;
                s.respond(reply);
            }
            Action::StartTls => {
                if !flush(&mut io, &mut out, ctx.command_timeout).await {
                    return;
                }
                let Some(tls) = listener.tls.as_ref() else { return };
                let Some((stream, desc)) =
                    handshake(tls.acceptor(), io, ctx.command_timeout, peer, &listener.label).await
                else {
                    return;
                };
                io = stream;
                tls_desc = Some(desc);
                s.tls_established();
            }
            Action::Close => {
                flush(&mut io, &mut out, Duration::from_secs(5)).await;
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}

/// The reply to `RCPT TO:<to>`: clients outside `relay.networks` that did not authenticate
/// may not relay; the trusted ones are refused recipients on the suppression list, with
/// when, why and how to lift it.
fn check_recipient(ctx: &Context, peer: SocketAddr, login: Option<&str>, to: &Address) -> Reply {
    let client = crate::policy::Client { ip: peer.ip(), login };
    if let Some(refused) = ctx.policy.check_recipient(&client, &to.domain_str()) {
        return refused;
    }
    if let Some(entry) = ctx.suppression.as_ref().and_then(|l| l.lookup(to)) {
        tracing::info!(%peer, rcpt = %to, reason = %entry.reason, since = %entry.date, "suppressed recipient refused");
        return entry.refusal(&to.to_string()).reply();
    }
    Cause::RecipientOk.reply()
}

/// Writes pending replies. False when the peer is gone.
async fn flush(io: &mut Box<dyn Io>, out: &mut Vec<u8>, wait: Duration) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = matches!(
        timeout(wait, async {
            io.write_all(out).await?;
            io.flush().await
        })
        .await,
        Ok(Ok(()))
    );
    out.clear();
    ok
}
