//! `homing-spool`: the durable message store of homing.
//!
//! A message is accepted (`250` after `DATA`) only once this crate says it is
//! on disk: its file written and fsynced in `tmp/`, renamed into `queue/`, and
//! `queue/` fsynced. Many sessions share that last fsync through the
//! [`Committer`] (group commit). After a crash, [`Spool::open`] finds every
//! stored message and each recipient's last recorded state, deletes the
//! unacknowledged files in `tmp/`, and moves anything corrupt to
//! `quarantine/` with a reason — it never drops a file silently.
//!
//! The crate knows nothing of SMTP and uses no async runtime; the server wraps
//! a [`Committer`] completion in whatever channel it likes.
//!
//! # On-disk format
//!
//! ```text
//! <root>/lock                 held (flock) while a process has the spool open
//! <root>/tmp/<id>.msg         being written; deleted at startup
//! <root>/tmp/spare-<n>        a removed message's file, to write over; deleted at startup
//! <root>/queue/<id>.msg       a stored message: header, body, trailer
//! <root>/queue/<id>.log       its state log: one checksummed line per event
//! <root>/quarantine/...       files that failed a check, for a human
//! ```
//!
//! `<id>.msg` is a `HOMING-SPOOL 1` magic line, the envelope as `key: value`
//! lines (percent-encoded values), a blank line, the body, and a fixed-size
//! trailer `\r\nHOMING-END <body length> <header CRC-32> <file CRC-32>\r\n`.
//! Recovery reads the header and seeks to the trailer, never the body;
//! [`Spool::read_body`] checks the CRC over the whole file. The state log and
//! its per-line checksums are described in [`state`]. The full description,
//! with an example, is `FORMAT.md` beside this crate's `Cargo.toml`.
//!
//! [`Spool::remove`] keeps the file of a finished message as a spare for a
//! new one to be written over, once `queue/` has been fsynced since: creating
//! and unlinking a file per message was the spool's largest cost.
//!
//! Failures to write (disk full, quota, read-only, permissions) are
//! [`SpoolError::StorageUnavailable`], which
//! [`SpoolError::is_storage_full_or_unwritable`] picks out for `452 4.3.1`;
//! they never touch messages already stored, because nothing stored is ever
//! rewritten in place.

mod codec;
mod commit;
mod crc;
mod envelope;
mod error;
pub mod format;
mod id;
mod recovery;
mod spare;
mod spool;
pub mod state;
mod writers;

pub use commit::{Committer, Done};
pub use crc::{Crc32, crc32};
pub use envelope::{
    Envelope, MessageKind, NOTIFY_DELAY, NOTIFY_FAILURE, NOTIFY_NEVER, NOTIFY_SUCCESS, NewMessage,
    RecipientRecord, Source, StoredMessage,
};
pub use error::SpoolError;
pub use id::{MessageId, ParseIdError};
pub use recovery::{Quarantined, RecoveredMessage, Recovery, RecoveryNote};
pub use spool::{Spool, SpoolOptions, SpoolStats};
pub use state::{RecipientState, RecipientStatus, StateRecord};
