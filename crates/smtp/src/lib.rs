//! homing-smtp: sans-IO SMTP (RFC 5321) — commands, replies, enhanced status codes,
//! and the server and client session state machines. No sockets, no async runtime.
//!
//! - [`address`]: paths and mailboxes, parsed once at the edge.
//! - [`command`], [`params`]: what a client sends.
//! - [`cause`]: every reply the server sends, and why.
//! - [`server`], [`data`]: the server session and its DATA decoder.
//! - [`sasl`]: the AUTH mechanisms PLAIN and LOGIN (RFC 4954, RFC 4616).
//! - [`received`]: the `Received:` trace field.
//! - [`reply_parser`], [`client`]: the client side.

pub mod address;
pub mod cause;
pub mod client;
pub mod command;
pub mod data;
pub mod date;
pub mod params;
pub mod received;
pub mod reply;
pub mod reply_parser;
pub mod sasl;
pub mod server;

pub use address::{Address, AddressError, AddressOptions, Domain, ReversePath};
pub use cause::{Cause, SuppressedBy};
pub use client::{Capabilities, ClientTransaction, Step, TransactionOutcome, dot_stuff};
pub use command::{Command, CommandError, CommandOptions, parse_command};
pub use params::{Body, MailParams, Notify, Orcpt, RcptParams, Ret};
pub use received::{Protocol, ReceivedInfo, received_header};
pub use reply::{EnhancedStatus, Reply};
pub use reply_parser::ReplyParser;
pub use sasl::{Mechanism, Password};
pub use server::{Action, ServerConfig, ServerSession, Transaction, Wait};
