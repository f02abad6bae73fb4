//! The client side: what a server offers (RFC 5321 §4.1.1.1), message content encoding
//! (RFC 5321 §4.5.2) and one mail transaction as a sans-IO state machine, with and without
//! PIPELINING (RFC 2920).

use std::collections::VecDeque;

use crate::address::{Address, ReversePath};
use crate::command::Command;
use crate::params::{MailParams, RcptParams};
use crate::reply::Reply;

/// The extensions a server announced in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pipelining: bool,
    pub starttls: bool,
    /// RFC 1870 SIZE: `Some(limit)`, or `Some(0)` when announced without a fixed limit.
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub enhanced_status_codes: bool,
    /// SASL mechanisms (RFC 4954), uppercased.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the keywords of an EHLO reply; the first line is the greeting and is skipped.
    /// Unknown keywords are ignored.
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut c = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => c.pipelining = true,
                "STARTTLS" => c.starttls = true,
                // LENIENT: an unparsable SIZE argument counts as "no fixed limit".
                "SIZE" => c.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => c.eight_bit_mime = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "DSN" => c.dsn = true,
                "ENHANCEDSTATUSCODES" => c.enhanced_status_codes = true,
                "AUTH" => c.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                // LENIENT: the pre-standard `AUTH=PLAIN LOGIN` form some servers still send.
                k if k.starts_with("AUTH=") => {
                    c.auth.push(k["AUTH=".len()..].to_string());
                    c.auth.extend(words.map(|w| w.to_ascii_uppercase()));
                }
                _ => {}
            }
        }
        let mut seen = Vec::new();
        c.auth.retain(|m| {
            !m.is_empty() && !seen.contains(m) && {
                seen.push(m.clone());
                true
            }
        });
        c
    }
}

/// Encodes message content for DATA (RFC 5321 §4.5.2): every line starting with `.` gets
/// another `.`, line endings become CRLF (a bare CR or LF is sent as CRLF, RFC 5321 §2.3.8),
/// a final CRLF is added if missing, and the `.CRLF` terminator is appended.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 5);
    let mut line_start = true;
    let mut i = 0;
    while i < data.len() {
        let rest = &data[i..];
        // Copy each run of line content at once; only line endings and leading dots need care.
        let n = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        if n > 0 {
            if line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            out.extend_from_slice(&rest[..n]);
            line_start = false;
            i += n;
            continue;
        }
        i += if rest[0] == b'\r' && rest.get(1) == Some(&b'\n') { 2 } else { 1 };
        out.extend_from_slice(b"\r\n");
        line_start = true;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// What the transaction needs from the glue after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write `commands()`.
    Send,
    /// Read the next reply.
    Wait,
    /// 354 arrived: write `dot_stuff(body)`, then read the final reply.
    SendBody,
    Done(TransactionOutcome),
}

/// How one transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionOutcome {
    pub mail: Reply,
    /// Each recipient's RCPT reply, `None` if RCPT was never sent.
    pub rcpt: Vec<Option<Reply>>,
    /// The final reply after the content, or DATA's rejection; `None` if DATA was not sent.
    pub data: Option<Reply>,
    /// The transaction is still open on the server: send RSET before the next one.
    pub needs_rset: bool,
}

impl TransactionOutcome {
    /// The reply that decided recipient `i`: MAIL's rejection, its RCPT rejection, or the
    /// reply after DATA. `None` when `i` is out of range.
    pub fn recipient_result(&self, i: usize) -> Option<&Reply> {
        if !is_2xx(&self.mail) {
            return Some(&self.mail);
        }
        let rcpt = self.rcpt.get(i)?;
        match rcpt {
            Some(r) if !is_2xx(r) => Some(r),
            _ => self.data.as_ref().or(rcpt.as_ref()).or(Some(&self.mail)),
        }
    }

    /// True when recipient `i` was accepted for delivery by the server.
    pub fn delivered(&self, i: usize) -> bool {
        self.recipient_result(i).is_some_and(|r| is_2xx(r) && self.data.is_some())
    }
}

/// A reply the transaction could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("the server sent a reply ({0}) when none was expected")]
    UnexpectedReply(Reply),
    #[error("the server answered DATA with {0}, which is neither 354 nor a failure")]
    BadDataReply(Reply),
}

fn is_2xx(r: &Reply) -> bool {
    r.code / 100 == 2
}

/// The reply the transaction is waiting for, in the order the commands were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    /// The final reply after the content (or after an empty `.` when nobody was accepted).
    Body,
}

/// One message on an already-greeted session (RFC 5321 §3.3), sans-IO.
#[derive(Debug)]
pub struct ClientTransaction {
    from: ReversePath,
    mail_params: MailParams,
    recipients: Vec<(Address, RcptParams)>,
    pipelining: bool,
    /// Bytes to write on the next `commands()`.
    pending: Vec<u8>,
    expect: VecDeque<Expect>,
    mail: Option<Reply>,
    rcpt: Vec<Option<Reply>>,
    data: Option<Reply>,
    started: bool,
}

impl ClientTransaction {
    pub fn new(
        from: ReversePath,
        mail_params: MailParams,
        recipients: Vec<(Address, RcptParams)>,
        pipelining: bool,
    ) -> Self {
        let rcpt = vec![None; recipients.len()];
        ClientTransaction {
            from,
            mail_params,
            recipients,
            pipelining,
            pending: Vec::new(),
            expect: VecDeque::new(),
            mail: None,
            rcpt,
            data: None,
            started: false,
        }
    }

    /// What to write now. With PIPELINING the first call gives MAIL, every RCPT and DATA in
    /// one batch (RFC 2920 §3.1); without it one command at a time.
    pub fn commands(&mut self) -> Vec<u8> {
        if !self.started {
            self.started = true;
            self.queue_mail();
            if self.pipelining {
                for i in 0..self.recipients.len() {
                    self.queue_rcpt(i);
                }
                self.queue(Command::Data, Expect::Data);
            }
        }
        std::mem::take(&mut self.pending)
    }

    fn queue(&mut self, cmd: Command, expect: Expect) {
        self.pending.extend_from_slice(&cmd.to_wire());
        self.expect.push_back(expect);
    }

    fn queue_mail(&mut self) {
        let cmd = Command::Mail { from: self.from.clone(), params: self.mail_params.clone() };
        self.queue(cmd, Expect::Mail);
    }

    fn queue_rcpt(&mut self, i: usize) {
        if let Some((to, params)) = self.recipients.get(i) {
            let cmd = Command::Rcpt { to: to.clone(), params: params.clone() };
            self.queue(cmd, Expect::Rcpt(i));
        }
    }

    fn any_accepted(&self) -> bool {
        self.mail.as_ref().is_some_and(is_2xx) && self.rcpt.iter().flatten().any(is_2xx)
    }

    /// MAIL's reply is always the first one expected, so `mail` is set by the time any
    /// outcome is built; the placeholder only keeps this free of panics.
    fn done(&mut self, needs_rset: bool) -> Step {
        Step::Done(TransactionOutcome {
            mail: self.mail.clone().unwrap_or_else(|| Reply::new(0, None, "")),
            rcpt: self.rcpt.clone(),
            data: self.data.clone(),
            needs_rset,
        })
    }

    /// Feeds the server's next reply.
    pub fn on_reply(&mut self, r: Reply) -> Result<Step, ClientError> {
        let Some(expect) = self.expect.pop_front() else {
            return Err(ClientError::UnexpectedReply(r));
        };
        match expect {
            Expect::Mail => {
                let ok = is_2xx(&r);
                self.mail = Some(r);
                if self.pipelining {
                    return Ok(Step::Wait);
                }
                if !ok {
                    // RFC 5321 §4.1.1.2: a failed MAIL opens no transaction.
                    return Ok(self.done(false));
                }
                Ok(self.after_rcpt(None))
            }
            Expect::Rcpt(i) => {
                if let Some(slot) = self.rcpt.get_mut(i) {
                    *slot = Some(r);
                }
                if self.pipelining {
                    return Ok(Step::Wait);
                }
                Ok(self.after_rcpt(Some(i)))
            }
            Expect::Data if r.code == 354 => {
                if self.any_accepted() {
                    self.expect.push_back(Expect::Body);
                    return Ok(Step::SendBody);
                }
                // RFC 2920 §3.1: DATA went out although nobody was accepted; end it empty.
                self.pending.extend_from_slice(b".\r\n");
                self.expect.push_back(Expect::Body);
                Ok(Step::Send)
            }
            Expect::Data if r.code >= 400 => {
                self.data = Some(r);
                let open = self.mail.as_ref().is_some_and(is_2xx);
                Ok(self.done(open))
            }
            Expect::Data => Err(ClientError::BadDataReply(r)),
            Expect::Body => {
                self.data = Some(r);
                Ok(self.done(false))
            }
        }
    }

    /// Without pipelining: the next RCPT, DATA, or the end when nobody was accepted.
    fn after_rcpt(&mut self, last: Option<usize>) -> Step {
        let next = last.map_or(0, |i| i + 1);
        if next < self.recipients.len() {
            self.queue_rcpt(next);
            return Step::Send;
        }
        if self.any_accepted() {
            self.queue(Command::Data, Expect::Data);
            return Step::Send;
        }
        self.done(true)
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
