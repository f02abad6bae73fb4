//! Accepting mail: listeners, and the tokio glue around `homing_smtp::server`.
//!
//! The session state machine decides every reply; this module moves bytes, applies the
//! RFC 5321 §4.5.3.2 timeouts, performs the STARTTLS handshake, asks the policy about
//! recipients, and hands complete messages to the spool, replying `250` only once the
//! message is on disk.

pub mod accept;
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

use crate::policy::RelayPolicy;
use crate::suppress::SuppressionList;
use accept::Acceptor;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Everything a session needs, shared by all sessions of all listeners.
pub struct Context {
    pub smtp: ServerConfig,
    pub policy: RelayPolicy,
    /// `None` when `[suppression] enabled = false`.
    pub suppression: Option<Arc<SuppressionList>>,
    pub acceptor: Acceptor,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub sessions: Arc<Semaphore>,
    pub max_sessions: usize,
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(ctx: Arc<Context>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(permit) = ctx.sessions.clone().try_acquire_owned() else {
                let mut stream = stream;
                let limit = ctx.max_sessions;
                let _ = stream.write_all(&Cause::TooManySessions { limit }.reply().to_wire()).await;
                tracing::warn!(%peer, "too many sessions (smtp.max_sessions): connection refused with 421");
                return;
            };
            session(&ctx, stream, peer, tls).await;
            drop(permit);
        });
    }
}

async fn session(ctx: &Context, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let mut smtp = ctx.smtp.clone();
    smtp.starttls = smtp.starttls && tls.is_some();
    let mut s = ServerSession::new(smtp);
    let mut io: Box<dyn Io> = Box::new(stream);
    let mut out = s.greeting().to_wire();
    let mut buf = vec![0u8; 64 * 1024];
    let mut tls_desc: Option<String> = None;
    tracing::debug!(%peer, "session start");
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
            // No listener offers AUTH yet.
            Action::Authenticate { .. } => {
                s.respond(Cause::AuthTemporaryFailure { detail: "no user store".into() }.reply())
            }
            Action::CheckRecipient { to, .. } => s.respond(check_recipient(ctx, peer, &to)),
            Action::Deliver(tx) => {
                let helo = s.helo_name().unwrap_or("").to_string();
                let reply = ctx.acceptor.accept(tx, peer, &helo, tls_desc.as_deref()).await;
                s.respond(reply);
            }
            Action::StartTls => {
                if !flush(&mut io, &mut out, ctx.command_timeout).await {
                    return;
                }
                let Some(acceptor) = tls.as_ref() else { return };
                match timeout(ctx.command_timeout, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        let (_, conn) = stream.get_ref();
                        tls_desc = Some(format!(
                            "version={} cipher={}",
                            conn.protocol_version()
                                .map(|v| format!("{v:?}").replace('_', "."))
                                .unwrap_or_default(),
                            conn.negotiated_cipher_suite()
                                .map(|c| format!("{:?}", c.suite()))
                                .unwrap_or_default()
                        ));
                        io = Box::new(stream);
                        s.tls_established();
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out");
                        return;
                    }
                }
            }
            Action::Close => {
                flush(&mut io, &mut out, Duration::from_secs(5)).await;
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}

/// The reply to `RCPT TO:<to>`: clients outside `relay.networks` may not relay; the trusted
/// ones (until AUTH exists, the relay clients are the authenticated senders) are refused
/// recipients on the suppression list, with when, why and how to lift it.
fn check_recipient(ctx: &Context, peer: SocketAddr, to: &Address) -> Reply {
    if let Some(refused) = ctx.policy.check_recipient(peer.ip(), &to.domain_str()) {
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
