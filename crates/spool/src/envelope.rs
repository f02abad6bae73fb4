//! What the spool keeps about a message besides its body. Everything here is
//! read back at every restart, so it stays small: no body, no headers.

use std::time::SystemTime;

use crate::MessageId;

/// `NOTIFY=NEVER` (RFC 3461 §4.1); exclusive of the other flags.
pub const NOTIFY_NEVER: u8 = 1;
/// `NOTIFY=SUCCESS`.
pub const NOTIFY_SUCCESS: u8 = 2;
/// `NOTIFY=FAILURE`.
pub const NOTIFY_FAILURE: u8 = 4;
/// `NOTIFY=DELAY`.
pub const NOTIFY_DELAY: u8 = 8;

/// The SMTP envelope and the facts about reception the later stages need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub received_at: SystemTime,
    /// `MAIL FROM` address; empty for the null sender `<>`, which is never bounced to.
    pub return_path: String,
    /// `ENVID` (RFC 3461 §4.4), as received (xtext already decoded).
    pub envid: Option<String>,
    /// The message's `Message-ID:` header (RFC 5322 §3.6.4), so every event can name it
    /// without reading the body.
    pub message_id: Option<String>,
    /// `RET=FULL` is `Some(true)`, `RET=HDRS` is `Some(false)` (RFC 3461 §4.3).
    pub ret_full: Option<bool>,
    /// `BODY=8BITMIME` was given (RFC 6152).
    pub body_8bit: bool,
    /// `SMTPUTF8` was given (RFC 6531).
    pub smtputf8: bool,
    pub source: Source,
    pub recipients: Vec<RecipientRecord>,
    pub kind: MessageKind,
}

/// Where the message came from, for `Received:` lines and for explaining.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub peer_ip: String,
    pub helo: String,
    /// TLS version and cipher, if the session was encrypted.
    pub tls: Option<String>,
    /// Authenticated identity, if any.
    pub auth: Option<String>,
}

/// One `RCPT TO`, in the order received; its index is the `rcpt` of state records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    pub address: String,
    /// `ORCPT` as `addr-type;addr`, e.g. `rfc822;x@y` (RFC 3461 §4.2).
    pub orcpt: Option<String>,
    /// `NOTIFY_*` bit flags; 0 when the client gave no `NOTIFY`.
    pub notify: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageKind {
    #[default]
    Normal,
    /// A delivery status notification homing generated: its failures are
    /// dropped, never bounced, so two servers cannot bounce forever.
    Dsn,
}

/// A message to store: the id comes from `Spool::new_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub envelope: Envelope,
    pub body: Vec<u8>,
}

/// Proof that a message is durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: MessageId,
    /// Size of the body in bytes (the spool file is slightly larger).
    pub size: u64,
}
