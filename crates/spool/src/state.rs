//! Per-recipient delivery state: `queue/<id>.log`, one [`StateRecord`] per
//! line, appended as deliveries happen and folded into [`RecipientState`] at
//! restart.
//!
//! A line is `<crc32 hex> <record>\n`, the checksum covering `<record>`, e.g.
//!
//! ```text
//! 5f0c2a91 deferred rcpt=0 at=1732370400.000000000 attempts=1 next=1732370700.000000000 detail=451%204.7.1%20greylisted
//! ```
//!
//! Appends are not fsynced by default: losing the tail after a power cut
//! means a recipient is tried again (a duplicate at worst), never lost. A
//! crash mid-append leaves a torn last line, which the checksum exposes and
//! the reader skips with a note.

use std::time::SystemTime;

use crate::codec::{parse_hex32, parse_u64, pct_decode, pct_encode, time_decode, time_encode};
use crate::crc::crc32;

/// One event in a recipient's life. `rcpt` indexes `Envelope::recipients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    Delivered {
        rcpt: u32,
        at: SystemTime,
        detail: String,
    },
    /// Permanent failure; `detail` is opaque to the spool (the binary stores JSON).
    Failed {
        rcpt: u32,
        at: SystemTime,
        detail: String,
    },
    Deferred {
        rcpt: u32,
        at: SystemTime,
        attempts: u32,
        next_attempt: SystemTime,
        detail: String,
    },
    DelayNotified {
        rcpt: u32,
        at: SystemTime,
    },
    /// The DSN reporting this recipient's failure is itself safely spooled.
    BounceQueued {
        rcpt: u32,
        at: SystemTime,
    },
}

impl StateRecord {
    pub fn rcpt(&self) -> u32 {
        match self {
            StateRecord::Delivered { rcpt, .. }
            | StateRecord::Failed { rcpt, .. }
            | StateRecord::Deferred { rcpt, .. }
            | StateRecord::DelayNotified { rcpt, .. }
            | StateRecord::BounceQueued { rcpt, .. } => *rcpt,
        }
    }

    /// The complete log line, checksum and newline included.
    pub fn encode_line(&self) -> Vec<u8> {
        let mut s = String::with_capacity(96);
        let (name, rcpt, at) = match self {
            StateRecord::Delivered { rcpt, at, .. } => ("delivered", rcpt, at),
            StateRecord::Failed { rcpt, at, .. } => ("failed", rcpt, at),
            StateRecord::Deferred { rcpt, at, .. } => ("deferred", rcpt, at),
            StateRecord::DelayNotified { rcpt, at } => ("delay-notified", rcpt, at),
            StateRecord::BounceQueued { rcpt, at } => ("bounce-queued", rcpt, at),
        };
        s.push_str(name);
        s.push_str(" rcpt=");
        s.push_str(&rcpt.to_string());
        s.push_str(" at=");
        time_encode(*at, &mut s);
        if let StateRecord::Deferred { attempts, next_attempt, .. } = self {
            s.push_str(" attempts=");
            s.push_str(&attempts.to_string());
            s.push_str(" next=");
            time_encode(*next_attempt, &mut s);
        }
        if let StateRecord::Delivered { detail, .. }
        | StateRecord::Failed { detail, .. }
        | StateRecord::Deferred { detail, .. } = self
        {
            s.push_str(" detail=");
            pct_encode(detail, &mut s);
        }
        let mut line = format!("{:08x} ", crc32(s.as_bytes())).into_bytes();
        line.extend_from_slice(s.as_bytes());
        line.push(b'\n');
        line
    }

    /// Parse one line without its newline.
    pub fn decode_line(line: &[u8]) -> Result<StateRecord, String> {
        let (sum, text) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => return Err("no checksum".into()),
        };
        let sum = parse_hex32(sum).ok_or("bad checksum field")?;
        let computed = crc32(text);
        if sum != computed {
            return Err(format!("checksum mismatch (stored {sum:08x}, computed {computed:08x})"));
        }
        let mut tokens = text.split(|&b| b == b' ');
        let name = tokens.next().unwrap_or_default();
        let mut f = LineFields::default();
        for t in tokens {
            let eq = t.iter().position(|&b| b == b'=').ok_or("token without =")?;
            let (k, v) = (&t[..eq], &t[eq + 1..]);
            match k {
                b"rcpt" => f.rcpt = Some(number(v)?),
                b"at" => f.at = Some(time_decode(v)?),
                b"attempts" => f.attempts = Some(number(v)?),
                b"next" => f.next = Some(time_decode(v)?),
                b"detail" => f.detail = Some(pct_decode(v)?),
                _ => return Err("unknown field".into()),
            }
        }
        let rcpt = f.rcpt.ok_or("missing rcpt")?;
        let at = f.at.ok_or("missing at")?;
        let detail = || f.detail.clone().ok_or("missing detail");
        Ok(match name {
            b"delivered" => StateRecord::Delivered { rcpt, at, detail: detail()? },
            b"failed" => StateRecord::Failed { rcpt, at, detail: detail()? },
            b"deferred" => StateRecord::Deferred {
                rcpt,
                at,
                attempts: f.attempts.ok_or("missing attempts")?,
                next_attempt: f.next.ok_or("missing next")?,
                detail: detail()?,
            },
            b"delay-notified" => StateRecord::DelayNotified { rcpt, at },
            b"bounce-queued" => StateRecord::BounceQueued { rcpt, at },
            _ => return Err("unknown record kind".into()),
        })
    }
}

#[derive(Default)]
struct LineFields {
    rcpt: Option<u32>,
    at: Option<SystemTime>,
    attempts: Option<u32>,
    next: Option<SystemTime>,
    detail: Option<String>,
}

fn number(v: &[u8]) -> Result<u32, &'static str> {
    parse_u64(v).and_then(|n| u32::try_from(n).ok()).ok_or("bad number")
}

/// Something in a state log that was skipped; reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogNote {
    /// 1-based line number in the log.
    pub line: usize,
    pub reason: String,
}

/// The readable content of a state log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedLog {
    pub records: Vec<StateRecord>,
    pub notes: Vec<LogNote>,
    /// Set when the log ends without a newline (crash mid-append): the length
    /// of the complete lines, to which the file should be cut so the next
    /// append does not glue onto the fragment.
    pub complete_len: Option<u64>,
}

/// Read a state log. Never fails: bad lines become notes.
pub fn parse_log(bytes: &[u8]) -> ParsedLog {
    let mut out = ParsedLog::default();
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    let (body, tail) = bytes.split_at(complete);
    let lines: Vec<&[u8]> =
        body.split(|&b| b == b'\n').take(body.iter().filter(|&&b| b == b'\n').count()).collect();
    let last = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        match StateRecord::decode_line(line) {
            Ok(r) => out.records.push(r),
            Err(e) => {
                let what = if i + 1 == last && tail.is_empty() {
                    "garbled last line (crash mid-append?) ignored"
                } else {
                    "garbled line skipped"
                };
                out.notes.push(LogNote { line: i + 1, reason: format!("{what}: {e}") });
            }
        }
    }
    if !tail.is_empty() {
        out.notes.push(LogNote {
            line: last + 1,
            reason: format!(
                "torn last line ({} bytes without newline, crash mid-append) ignored",
                tail.len()
            ),
        });
        out.complete_len = Some(complete as u64);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecipientStatus {
    #[default]
    Pending,
    Deferred,
    Delivered,
    Failed,
}

impl RecipientStatus {
    pub fn is_final(self) -> bool {
        matches!(self, RecipientStatus::Delivered | RecipientStatus::Failed)
    }
}

/// A recipient's state after replaying its log records in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecipientState {
    pub status: RecipientStatus,
    pub attempts: u32,
    pub next_attempt: Option<SystemTime>,
    pub last_detail: Option<String>,
    pub delay_notified: bool,
    pub bounce_queued: bool,
}

/// Replay `records` over `n` pending recipients. The first final state
/// (delivered or failed) sticks: a recipient ends in exactly one final state,
/// so later status records for it are reported and ignored.
pub fn fold(n: usize, records: &[StateRecord]) -> (Vec<RecipientState>, Vec<String>) {
    let mut states = vec![RecipientState::default(); n];
    let mut notes = Vec::new();
    for rec in records {
        let Some(st) = usize::try_from(rec.rcpt()).ok().and_then(|i| states.get_mut(i)) else {
            notes.push(format!("record for recipient {} but the message has {n}; ignored", rec.rcpt()));
            continue;
        };
        let is_status = matches!(
            rec,
            StateRecord::Delivered { .. } | StateRecord::Failed { .. } | StateRecord::Deferred { .. }
        );
        if is_status && st.status.is_final() {
            notes.push(format!(
                "recipient {} already {:?}; later status record ignored",
                rec.rcpt(),
                st.status
            ));
            continue;
        }
        match rec {
            StateRecord::Delivered { detail, .. } | StateRecord::Failed { detail, .. } => {
                st.status = if matches!(rec, StateRecord::Delivered { .. }) {
                    RecipientStatus::Delivered
                } else {
                    RecipientStatus::Failed
                };
                st.next_attempt = None;
                st.last_detail = Some(detail.clone());
            }
            StateRecord::Deferred { attempts, next_attempt, detail, .. } => {
                st.status = RecipientStatus::Deferred;
                st.attempts = *attempts;
                st.next_attempt = Some(*next_attempt);
                st.last_detail = Some(detail.clone());
            }
            StateRecord::DelayNotified { .. } => st.delay_notified = true,
            StateRecord::BounceQueued { .. } => st.bounce_queued = true,
        }
    }
    (states, notes)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
