//! The server session state machine (RFC 5321 §4.1.1, §4.1.4 command order), sans-IO.
//!
//! The glue pushes bytes read from the peer with [`ServerSession::push_input`] and calls
//! [`ServerSession::next_action`] until it gets [`Action::ReadMore`] or [`Action::Close`],
//! or an action that needs an answer (`CheckSender`, `CheckRecipient`, `Deliver`,
//! `Authenticate`: call [`ServerSession::respond`]; `StartTls`: do the handshake, then
//! [`ServerSession::tls_established`]). Until that answer, `next_action` returns `ReadMore`
//! and processes nothing.
//!
//! AUTH (RFC 4954) runs the SASL exchange of `sasl` here; the glue only checks the
//! credentials that come out of it. It is offered only once TLS is active.
//!
//! PIPELINING (RFC 2920): several commands may arrive in one push; they are handled in order
//! and each reply is emitted as its own `Action::Reply`; the glue flushes on `ReadMore`.

use std::collections::VecDeque;
use std::mem;

use crate::address::{Address, ReversePath};
use crate::cause::Cause;
use crate::command::{Command, CommandOptions, parse_command};
use crate::data::{DataDecoder, DataStatus, count_received};
use crate::params::{MailParams, RcptParams};
use crate::reply::Reply;
use crate::sasl::{Mechanism, Password};

/// Limits and options of one server session. Every limit has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The name in the greeting, EHLO reply and 221.
    pub hostname: String,
    /// Longest command line in octets without CRLF (RFC 5321 §4.5.3.1.4 asks for at least
    /// 512). Default 2048.
    pub max_line_length: usize,
    /// Recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100). Default 1000.
    pub max_recipients: usize,
    /// Largest message in octets after dot-unstuffing, advertised as SIZE (RFC 1870).
    /// Default 25 MiB.
    pub max_message_size: u64,
    /// Refused commands before the session is closed with 421. Default 20.
    pub max_bad_commands: u32,
    /// Commands per session before it is closed with 421. Default 10 000.
    pub max_commands: u32,
    /// `Received:` fields a message may carry before it is refused as a loop
    /// (RFC 5321 §6.3). Default 50.
    pub max_received_headers: usize,
    /// Offer STARTTLS (RFC 3207) while the session is in plaintext. Default false.
    pub starttls: bool,
    /// The connection is TLS from its first octet (RFC 8314 §3.3, port 465): the session
    /// starts as if STARTTLS had completed. Default false.
    pub implicit_tls: bool,
    /// Offer AUTH PLAIN LOGIN (RFC 4954) once TLS is active; before TLS, AUTH gets
    /// `538 5.7.11`. Default false (an MX port).
    pub auth: bool,
    /// MAIL is refused with `530 5.7.0` until the client authenticated (a submission port,
    /// RFC 6409 §4.3). Default false.
    pub require_auth: bool,
    /// Unprocessed input held while replies are pending, in octets; a client that pipelines
    /// more is disconnected with 421. Default 1 MiB.
    pub max_buffered_input: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            max_line_length: 2048,
            max_recipients: 1000,
            max_message_size: 26_214_400,
            max_bad_commands: 20,
            max_commands: 10_000,
            max_received_headers: 50,
            starttls: false,
            implicit_tls: false,
            auth: false,
            require_auth: false,
            max_buffered_input: 1 << 20,
        }
    }
}

/// Which timeout of RFC 5321 §4.5.3.2 applies while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Waiting for a command (§4.5.3.2.7, 5 minutes).
    Command,
    /// Waiting for message content (§4.5.3.2.5, 3 minutes per read).
    Data,
}

/// One received message, ready for the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub helo: String,
    /// The client greeted with EHLO.
    pub esmtp: bool,
    pub from: ReversePath,
    pub mail_params: MailParams,
    pub recipients: Vec<(Address, RcptParams)>,
    /// Dot-unstuffed content with CRLF line endings and its final CRLF, terminator removed.
    pub data: Vec<u8>,
    /// The login the client authenticated as (RFC 4954), if it did.
    pub auth: Option<String>,
}

/// What the glue does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this reply (the glue may buffer; it flushes before it reads).
    Reply(Reply),
    /// Flush, then read more input.
    ReadMore,
    /// Decide on the sender; answer with `respond` (2xx accepts).
    CheckSender { from: ReversePath, params: MailParams },
    /// Decide on a recipient; answer with `respond` (2xx accepts).
    CheckRecipient { to: Address, params: RcptParams },
    /// Spool the message; answer with `respond` (e.g. `Cause::Queued`).
    Deliver(Transaction),
    /// Flush, then start the TLS handshake; the 220 was the previous action.
    StartTls,
    /// Check these credentials; answer with `accept_auth` when they are right, or with
    /// `respond` (e.g. `Cause::AuthFailed`, `Cause::AuthTemporaryFailure`) when not. (A 2xx
    /// through `respond` also succeeds, recording `login` as the client wrote it.)
    Authenticate { mechanism: Mechanism, login: String, password: Password },
    /// Flush and close the connection.
    Close,
}

#[derive(Debug)]
struct Envelope {
    from: ReversePath,
    params: MailParams,
    recipients: Vec<(Address, RcptParams)>,
}

/// An answer the glue owes.
#[derive(Debug)]
enum Owed {
    Sender(ReversePath, MailParams),
    Recipient(Address, RcptParams),
    Delivery,
    Auth(String),
}

#[derive(Debug)]
enum State {
    Command,
    Data(DataDecoder),
    Owed(Owed),
    /// In an AUTH exchange: lines are SASL responses, not commands.
    Sasl(Sasl),
    /// `StartTls` was emitted; waiting for `tls_established`.
    Tls,
    Closed,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    /// Unprocessed input is `input[start..]`.
    input: Vec<u8>,
    start: usize,
    /// The rest of an over-long command line is being dropped.
    discarding: bool,
    out: VecDeque<Action>,
    state: State,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    /// The login of a successful AUTH.
    authenticated: Option<String>,
    envelope: Option<Envelope>,
    bad_commands: u32,
    commands: u32,
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> Self {
        ServerSession {
            input: Vec::new(),
            start: 0,
            discarding: false,
            out: VecDeque::new(),
            state: State::Command,
            helo: None,
            esmtp: false,
            tls: config.implicit_tls,
            authenticated: None,
            envelope: None,
            bad_commands: 0,
            commands: 0,
            config,
        }
    }

    /// The 220 greeting (RFC 5321 §4.3.1).
    pub fn greeting(&mut self) -> Reply {
        Cause::Greeting { hostname: self.config.hostname.clone() }.reply()
    }

    /// Bytes read from the peer.
    pub fn push_input(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.compact();
        let rest = match &mut self.state {
            // Content goes straight to the decoder, which bounds what it keeps.
            State::Data(dec) if self.input.is_empty() => {
                let used = dec.feed(bytes);
                if dec.status() == DataStatus::BareLineEnding {
                    return;
                }
                &bytes[used..]
            }
            _ => bytes,
        };
        self.input.extend_from_slice(rest);
        if self.input.len() > self.config.max_buffered_input {
            let limit = self.config.max_buffered_input;
            self.reply(Cause::TooMuchPipelinedInput { limit });
        }
    }

    /// The next thing for the glue to do.
    pub fn next_action(&mut self) -> Action {
        loop {
            if let Some(a) = self.out.pop_front() {
                return a;
            }
            match self.state {
                State::Closed => return Action::Close,
                State::Owed(_) | State::Tls => return Action::ReadMore,
                State::Data(_) => {
                    if let Some(a) = self.step_data() {
                        return a;
                    }
                }
                State::Command | State::Sasl(_) => match self.take_line() {
                    Line::Complete(range) => {
                        let line = self.input[range].to_vec();
                        let action = if matches!(self.state, State::Sasl(_)) {
                            self.sasl_line(&line)
                        } else {
                            self.handle_line(&line)
                        };
                        if let Some(a) = action {
                            return a;
                        }
                    }
                    Line::Handled => {}
                    Line::Incomplete => return Action::ReadMore,
                },
            }
        }
    }

    /// The answer to `CheckSender`, `CheckRecipient`, `Deliver` or `Authenticate`: 2xx
    /// accepts. The reply is sent to the client as given. A 421 closes the session
    /// (RFC 5321 §3.8). A failed AUTH counts as a bad command, so a client guessing
    /// passwords is disconnected after `max_bad_commands`.
    pub fn respond(&mut self, reply: Reply) {
        if !matches!(self.state, State::Owed(_)) {
            return;
        }
        let State::Owed(owed) = mem::replace(&mut self.state, State::Command) else {
            return;
        };
        let accepted = reply.code / 100 == 2;
        match owed {
            Owed::Sender(from, params) if accepted => {
                self.envelope = Some(Envelope { from, params, recipients: Vec::new() });
            }
            Owed::Recipient(to, params) if accepted => {
                if let Some(e) = &mut self.envelope {
                    e.recipients.push((to, params));
                }
            }
            Owed::Auth(login) if accepted => self.authenticated = Some(login),
            Owed::Auth(_) if reply.code != 421 => {
                self.bad_commands = self.bad_commands.saturating_add(1);
                if self.bad_commands > self.config.max_bad_commands {
                    let limit = self.config.max_bad_commands;
                    self.reply(Cause::TooManyBadCommands { limit });
                    return;
                }
            }
            _ => {}
        }
        let closes = reply.code == 421;
        self.out.push_back(Action::Reply(reply));
        if closes {
            self.state = State::Closed;
        }
    }

    /// After the TLS handshake: back to the fresh state, as RFC 3207 §4.2 requires. Input
    /// buffered before the handshake is dropped (it was sent in plaintext and could have been
    /// injected), the client must greet again, and EHLO no longer offers STARTTLS.
    pub fn tls_established(&mut self) {
        if !matches!(self.state, State::Tls) {
            return;
        }
        self.input.clear();
        self.start = 0;
        self.discarding = false;
        self.helo = None;
        self.esmtp = false;
        self.envelope = None;
        self.authenticated = None;
        self.tls = true;
        self.state = State::Command;
    }

    /// Which timeout applies to the next read.
    pub fn waiting_for(&self) -> Wait {
        match self.state {
            State::Data(_) => Wait::Data,
            _ => Wait::Command,
        }
    }

    /// The read timed out: returns the 421 to send; the session is closed.
    pub fn timeout(&mut self) -> Reply {
        self.shut(Cause::Timeout)
    }

    /// The server is stopping: returns the 421 to send; the session is closed.
    pub fn shutdown(&mut self) -> Reply {
        self.shut(Cause::ShuttingDown)
    }

    /// The name from the last EHLO or HELO.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The login the client authenticated as with AUTH, for the policy (who may relay, which
    /// senders it may use) and the `Received:` field.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Octets the session holds: unprocessed input plus message content being received.
    pub fn buffered_bytes(&self) -> usize {
        let data = match &self.state {
            State::Data(d) => d.buffered(),
            _ => 0,
        };
        self.input.len() + data
    }

    fn shut(&mut self, cause: Cause) -> Reply {
        self.state = State::Closed;
        self.out.clear();
        self.input.clear();
        self.start = 0;
        cause.reply()
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
    }

    /// Queues the reply for `cause`; a cause that ends the session closes it.
    fn reply(&mut self, cause: Cause) {
        self.out.push_back(Action::Reply(cause.reply()));
        if cause.closes() {
            self.state = State::Closed;
            self.input.clear();
            self.start = 0;
        }
    }

    /// A refused command; too many of them end the session.
    fn bad(&mut self, cause: Cause) {
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands > self.config.max_bad_commands {
            let limit = self.config.max_bad_commands;
            self.reply(Cause::TooManyBadCommands { limit });
        } else {
            self.reply(cause);
        }
    }

    fn take_line(&mut self) -> Line {
        let pending = &self.input[self.start..];
        let Some(lf) = pending.iter().position(|&b| b == b'\n') else {
            if self.discarding {
                self.input.clear();
                self.start = 0;
            } else if pending.len() > self.config.max_line_length + 1 {
                // Too long already: answer now and drop the rest when its LF arrives.
                self.input.clear();
                self.start = 0;
                self.discarding = true;
                self.line_too_long();
                return Line::Handled;
            }
            return Line::Incomplete;
        };
        let begin = self.start;
        self.start += lf + 1;
        // LENIENT: a bare LF ends a command line too (RFC 5321 §2.3.8 wants CRLF).
        let mut end = begin + lf;
        if end > begin && self.input[end - 1] == b'\r' {
            end -= 1;
        }
        if mem::take(&mut self.discarding) {
            return Line::Handled;
        }
        if end - begin > self.config.max_line_length {
            self.line_too_long();
            return Line::Handled;
        }
        Line::Complete(begin..end)
    }

    /// An over-long line: a command (`500 5.5.2`), or a SASL response, which also ends the
    /// exchange (RFC 4954 §6 `500 5.5.6`).
    fn line_too_long(&mut self) {
        let limit = self.config.max_line_length;
        if matches!(self.state, State::Sasl(_)) {
            self.state = State::Command;
            self.bad(Cause::AuthLineTooLong { limit });
        } else {
            self.bad(Cause::LineTooLong { limit });
        }
    }

    fn handle_line(&mut self, line: &[u8]) -> Option<Action> {
        self.commands = self.commands.saturating_add(1);
        if self.commands > self.config.max_commands {
            let limit = self.config.max_commands;
            self.reply(Cause::TooManyCommands { limit });
            return None;
        }
        // The server offers SMTPUTF8; inside a transaction only if MAIL asked for it.
        let utf8 = self.envelope.as_ref().is_none_or(|e| e.params.smtputf8);
        match parse_command(line, CommandOptions { utf8 }) {
            Ok(cmd) => self.handle(cmd),
            Err(e) => {
                self.bad(Cause::from_command_error(&e));
                None
            }
        }
    }

    fn handle(&mut self, cmd: Command) -> Option<Action> {
        let seq = |detail: &str| Cause::BadSequence { detail: detail.into() };
        match cmd {
            Command::Ehlo(name) => self.greet(name, true),
            Command::Helo(name) => self.greet(name, false),
            Command::Mail { from, params } => {
                if self.helo.is_none() {
                    self.bad(seq("send EHLO or HELO first"));
                } else if self.config.require_auth && self.authenticated.is_none() {
                    self.bad(Cause::AuthRequired { tls: self.tls });
                } else if self.envelope.is_some() {
                    self.bad(seq("a transaction is already open; send RSET to start over"));
                } else if params.size.is_some_and(|s| s > self.config.max_message_size) {
                    // RFC 1870 §6.1: refuse at once when the declared size is too big.
                    self.reply(Cause::MessageTooBig { limit: self.config.max_message_size });
                } else {
                    self.state = State::Owed(Owed::Sender(from.clone(), params.clone()));
                    return Some(Action::CheckSender { from, params });
                }
            }
            Command::Rcpt { to, params } => match &self.envelope {
                None => self.bad(seq("send MAIL FROM first")),
                Some(e) if e.recipients.len() >= self.config.max_recipients => {
                    self.reply(Cause::TooManyRecipients { limit: self.config.max_recipients });
                }
                Some(_) => {
                    self.state = State::Owed(Owed::Recipient(to.clone(), params.clone()));
                    return Some(Action::CheckRecipient { to, params });
                }
            },
            Command::Data => match &self.envelope {
                None => self.bad(seq("send MAIL FROM and RCPT TO first")),
                // RFC 2920 §3.1: a pipelining client sends DATA even when every RCPT failed.
                Some(e) if e.recipients.is_empty() => self.reply(Cause::NoValidRecipients),
                Some(_) => {
                    self.reply(Cause::StartData);
                    self.state = State::Data(DataDecoder::new(self.config.max_message_size));
                }
            },
            Command::Rset => {
                self.envelope = None;
                self.reply(Cause::Ok);
            }
            Command::Noop => self.reply(Cause::Ok),
            Command::Quit => {
                let hostname = self.config.hostname.clone();
                self.reply(Cause::Closing { hostname });
            }
            Command::Vrfy(_) => self.reply(Cause::VrfyCannotVerify),
            Command::Help => self.reply(Cause::Help),
            Command::StartTls => {
                if self.tls {
                    self.bad(Cause::TlsAlreadyActive);
                } else if !self.config.starttls {
                    self.bad(Cause::TlsNotAvailable);
                } else if self.envelope.is_some() {
                    self.bad(seq("STARTTLS inside a mail transaction; send RSET first"));
                } else {
                    self.reply(Cause::StartTlsReady);
                    self.out.push_back(Action::StartTls);
                    self.state = State::Tls;
                    // Plaintext pipelined after STARTTLS is never executed (RFC 3207 §5).
                    self.input.clear();
                    self.start = 0;
                }
            }
            Command::Auth { mechanism, initial } => return self.auth(&mechanism, initial.as_deref()),
        }
        None
    }

    /// EHLO or HELO; also resets the transaction (RFC 5321 §4.1.4).
    fn greet(&mut self, name: String, esmtp: bool) {
        self.envelope = None;
        self.esmtp = esmtp;
        self.helo = Some(name.clone());
        let hostname = self.config.hostname.clone();
        let cause = if esmtp {
            Cause::EhloOk { hostname, client: name, keywords: self.keywords() }
        } else {
            Cause::HeloOk { hostname, client: name }
        };
        self.reply(cause);
    }

    /// RFC 5321 §4.1.1.1 extension keywords.
    fn keywords(&self) -> Vec<String> {
        let mut k = vec!["PIPELINING".to_string(), format!("SIZE {}", self.config.max_message_size)];
        if self.config.starttls && !self.tls {
            k.push("STARTTLS".into());
        }
        if self.config.auth && self.tls && self.authenticated.is_none() {
            let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
            k.push(format!("AUTH {}", names.join(" ")));
        }
        for s in ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"] {
            k.push(s.into());
        }
        k
    }

    /// Feeds buffered input to the DATA decoder; returns an action once the message ends.
    fn step_data(&mut self) -> Option<Action> {
        let State::Data(dec) = &mut self.state else {
            return None;
        };
        self.start += dec.feed(&self.input[self.start..]);
        match dec.status() {
            DataStatus::More => {
                self.input.clear();
                self.start = 0;
                Some(Action::ReadMore)
            }
            DataStatus::BareLineEnding => {
                self.envelope = None;
                self.reply(Cause::BareLineEnding);
                None
            }
            DataStatus::Done => {
                let State::Data(dec) = mem::replace(&mut self.state, State::Command) else {
                    return None;
                };
                let envelope = self.envelope.take()?;
                if dec.oversize() {
                    self.reply(Cause::MessageTooBig { limit: self.config.max_message_size });
                    return None;
                }
                let data = dec.into_data();
                let hops = count_received(&data);
                let limit = self.config.max_received_headers;
                if hops > limit {
                    self.reply(Cause::MailLoop { hops, limit });
                    return None;
                }
                self.state = State::Owed(Owed::Delivery);
                Some(Action::Deliver(Transaction {
                    helo: self.helo.clone().unwrap_or_default(),
                    esmtp: self.esmtp,
                    from: envelope.from,
                    mail_params: envelope.params,
                    recipients: envelope.recipients,
                    data,
                    auth: self.authenticated.clone(),
                }))
            }
        }
    }
}

/// The result of looking for the next command line.
enum Line {
    Complete(std::ops::Range<usize>),
    /// A line was consumed and answered or dropped.
    Handled,
    Incomplete,
}

#[path = "server_auth.rs"]
mod auth;
use auth::Sasl;

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
