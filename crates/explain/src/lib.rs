//! homing-explain: say, per recipient, what happened, why, and what to do.
//!
//! - [`taxonomy`]: the vocabulary — [`Reason`] (Sisimai's names), [`Scope`], [`Actor`],
//!   [`Stage`].
//! - [`evidence`]: what an attempt observed ([`Evidence`]).
//! - [`explain`]: classify evidence into an [`Explanation`] using the rules in `rules/*.toml`
//!   ([`Rules`]), where every rule carries examples the tests check.
//! - [`bounce`]: read bounces from any server (RFC 3464 reports, ARF complaints, the prose
//!   of servers that send neither) and explain each failed recipient.
//! - [`dsn`]: write delivery status notifications (RFC 3464, RFC 6522).
//!
//! ```
//! use homing_explain::{explain, Evidence, ReplyEvidence, Reason, Stage};
//!
//! let mut ev = Evidence::bare(Stage::Rcpt, "example.com");
//! ev.reply = Some(ReplyEvidence {
//!     code: 550,
//!     status: Some("5.1.1".into()),
//!     text: "<bob@example.com>: Recipient address rejected: User unknown".into(),
//! });
//! let why = explain(&ev);
//! assert_eq!(why.reason, Reason::UserUnknown);
//! assert!(why.hard && why.suppresses_recipient());
//! println!("{}", why.summary());
//! ```

pub mod bounce;
mod classify;
pub mod dsn;
pub mod evidence;
mod explanation;
pub mod rules;
pub mod taxonomy;
mod template;

pub use classify::explain;
pub use evidence::{DnsEvidence, Evidence, ReplyEvidence};
pub use explanation::{Explanation, human_duration};
pub use rules::{Rules, RulesError};
pub use taxonomy::{Actor, Reason, Scope, Stage, UnknownName};
