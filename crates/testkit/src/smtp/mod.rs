//! A scripted SMTP receiver on real TCP: the test oracle for delivery.
//!
//! An independent, minimal ESMTP server (RFC 5321) that shares no code with the
//! system under test. It records every transaction, answers as its [`Script`]
//! says, and keeps a `C:`/`S:` transcript of every session.

mod script;
mod session;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use script::{DEFAULT_MAX_MESSAGE, RcptRule, Script};

/// One transaction that reached the end of DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Which connection it came on, counting from 1 in accept order.
    pub connection: usize,
    /// The EHLO or HELO argument.
    pub helo: String,
    /// The reverse-path, inside `<>` (empty for the null sender).
    pub mail_from: String,
    /// The accepted recipients, inside `<>`, in order.
    pub rcpt_to: Vec<String>,
    /// The message, dot-unstuffed, line endings as received, without the final `.`.
    pub data: Vec<u8>,
    /// Everything after `<…>` on the MAIL command (e.g. `SIZE=123 BODY=8BITMIME`).
    pub mail_params: String,
    /// Everything after `<…>` on each accepted RCPT command, parallel to `rcpt_to`.
    pub rcpt_params: Vec<String>,
    /// The reply given to the final dot.
    pub reply: String,
}

impl Received {
    /// The message as text, for assertions (invalid UTF-8 shown as U+FFFD).
    pub fn data_text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// What all sessions of one receiver share.
pub(crate) struct Shared {
    pub(crate) script: Script,
    log: Mutex<Log>,
    accepted: watch::Sender<usize>,
}

#[derive(Default)]
struct Log {
    accepted: Vec<Received>,
    rejected: Vec<Received>,
    /// One transcript per connection, in accept order.
    transcripts: Vec<Vec<String>>,
    data_replies_used: usize,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Log> {
        // A poisoned lock only means a session task panicked; the log is still consistent.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a new connection and returns its number (from 1).
    fn open(&self, peer: SocketAddr) -> usize {
        let mut log = self.log();
        log.transcripts.push(Vec::new());
        let id = log.transcripts.len();
        if let Some(t) = log.transcripts.last_mut() {
            t.push(format!("== connection {id} from {peer}"));
        }
        id
    }

    pub(crate) fn note(&self, connection: usize, line: String) {
        if let Some(t) = self.log().transcripts.get_mut(connection - 1) {
            t.push(line);
        }
    }

    /// The reply to the next final dot: scripted ones in order, then the default.
    pub(crate) fn next_data_reply(&self) -> String {
        let mut log = self.log();
        let reply = self.script.data_replies.get(log.data_replies_used).cloned();
        log.data_replies_used += 1;
        reply.unwrap_or_else(|| "250 2.0.0 Ok: queued".to_owned())
    }

    pub(crate) fn record(&self, received: Received, accepted: bool) {
        let mut log = self.log();
        if accepted {
            log.accepted.push(received);
            let n = log.accepted.len();
            drop(log);
            self.accepted.send_replace(n);
        } else {
            log.rejected.push(received);
        }
    }
}

/// A running receiver; dropping it (or [`Receiver::shutdown`]) stops it and closes
/// every connection.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).field("script", &self.shared.script).finish()
    }
}

impl Receiver {
    /// Listens on exactly `addr` (port 0 picks a free one) on the current tokio runtime.
    ///
    /// Returns once the socket is bound.
    pub async fn start(addr: SocketAddr, script: Script) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared =
            Arc::new(Shared { script, log: Mutex::new(Log::default()), accepted: watch::Sender::new(0) });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Receiver { addr, shared, accept })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The transactions accepted (2xx after the final dot) so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.log().accepted.clone()
    }

    /// The transactions whose final dot got a failure reply, in order.
    pub fn rejected(&self) -> Vec<Received> {
        self.shared.log().rejected.clone()
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed, and
    /// returns the accepted messages either way.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut count = self.shared.accepted.subscribe();
        // On timeout the caller's assertion on the returned messages tells what is missing.
        let _ = tokio::time::timeout(timeout, count.wait_for(|&c| c >= n)).await;
        self.messages()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.log().transcripts.len()
    }

    /// Every session's lines: `== connection N from ADDR`, then `C: …` and `S: …`.
    pub fn transcript(&self) -> Vec<String> {
        self.shared.log().transcripts.concat()
    }

    /// Stops listening, closes every connection, and waits until the port is free.
    pub async fn shutdown(mut self) {
        self.accept.abort();
        // The accept task can only end by this abort; its result carries nothing.
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Sessions live in this set, so aborting the accept task ends them too.
    let mut sessions = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let id = shared.open(peer);
                sessions.spawn(session::run(stream, id, Arc::clone(&shared)));
            }
            // Out of descriptors and the like: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        while sessions.try_join_next().is_some() {}
    }
}
