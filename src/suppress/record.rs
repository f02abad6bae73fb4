//! One line of the suppression file (docs/suppression.md): an `add` with the whole entry,
//! or a `remove` tombstone. Addresses are parsed once here, at the edge.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homing_explain::{Explanation, Reason};
use homing_smtp::address::{AddressOptions, parse_mailbox};
use homing_smtp::{Address, Cause, EnhancedStatus, SuppressedBy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A recipient on the list: who, why, since when, and on whose word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// As first listed (the domain lowercased by the parser).
    pub address: String,
    pub reason: Reason,
    /// The enhanced status code of the failure that listed it (RFC 3463), e.g. `5.1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The explanation's cause: one sentence saying why the address is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The operator's words, for entries added by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub source: Source,
    pub date: Date,
}

/// Where an entry came from: `bounce <queue id>` or `manual`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A final hard failure of the message with this queue id.
    Bounce(String),
    /// `homing suppress add`.
    Manual,
    /// `homing why --suppress`: a bounce or complaint report read from this file.
    Report(String),
}

/// A point in time written as RFC 3339 UTC, `2026-11-20T14:03:19Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub SystemTime);

/// A line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Line {
    Add(Entry),
    /// Lifts an earlier `add` of the same address.
    Remove {
        address: String,
        date: Date,
    },
}

/// An address the list cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an email address like user@example.com: {detail}")]
pub struct BadAddress {
    pub value: String,
    pub detail: String,
}

/// Parses `user@example.com` (angle brackets allowed, UTF-8 allowed as with SMTPUTF8).
pub fn parse_address(s: &str) -> Result<Address, BadAddress> {
    let t = s.trim();
    let t = t.strip_prefix('<').and_then(|t| t.strip_suffix('>')).unwrap_or(t);
    parse_mailbox(t, AddressOptions { utf8: true })
        .map_err(|e| BadAddress { value: s.to_string(), detail: e.to_string() })
}

/// The lookup key. DEVIATION: RFC 5321 §2.4 lets only the receiving host interpret the
/// case of a local part, but practically every mailbox provider ignores it, and a list that
/// misses `Bob@` after `bob@` bounced would not protect the sender's reputation. So the
/// whole address compares case-insensitively, like the suppression lists of mail services.
pub fn key(address: &Address) -> String {
    address.to_string().to_lowercase()
}

impl Entry {
    /// The entry for a recipient whose final failure (message `queue_id`) says it is dead.
    pub fn from_bounce(address: &Address, why: &Explanation, queue_id: &str, now: SystemTime) -> Entry {
        Entry {
            address: address.to_string(),
            reason: why.reason,
            status: Some(why.status.clone()),
            cause: Some(why.cause.clone()),
            note: None,
            source: Source::Bounce(queue_id.to_string()),
            date: Date(now),
        }
    }

    /// The entry for a recipient a bounce or complaint report (read by `homing why`) says
    /// is dead or complained.
    pub fn from_report(
        address: &Address,
        reason: Reason,
        status: &str,
        cause: &str,
        file: &str,
        now: SystemTime,
    ) -> Entry {
        Entry {
            address: address.to_string(),
            reason,
            status: (!status.is_empty()).then(|| status.to_string()),
            cause: Some(cause.to_string()),
            note: None,
            source: Source::Report(file.to_string()),
            date: Date(now),
        }
    }

    /// An entry added by hand. Without a reason it is `suppressed`: listed, no more said.
    pub fn manual(address: &Address, reason: Option<Reason>, note: Option<String>, now: SystemTime) -> Entry {
        Entry {
            address: address.to_string(),
            reason: reason.unwrap_or(Reason::Suppressed),
            status: None,
            cause: None,
            note,
            source: Source::Manual,
            date: Date(now),
        }
    }

    /// The refusal of `RCPT TO:<rcpt>` for this entry, naming the address as the client
    /// wrote it (the reply text comes from `homing_smtp::cause`).
    pub fn refusal(&self, rcpt: &str) -> Cause {
        let by = match (&self.source, self.reason) {
            (_, Reason::Feedback) => SuppressedBy::Complaint,
            (Source::Manual, _) => SuppressedBy::Operator,
            (Source::Bounce(_) | Source::Report(_), _) => SuppressedBy::Bounce {
                status: self.status.as_deref().and_then(|s| s.parse::<EnhancedStatus>().ok()),
            },
        };
        let words = self.cause.as_deref().or(self.note.as_deref()).unwrap_or("no note given");
        Cause::Suppressed {
            address: rcpt.to_string(),
            since: self.date.day(),
            by,
            detail: format!("{}: {words}", self.reason),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bounce(id) => write!(f, "bounce {id}"),
            Source::Manual => f.write_str("manual"),
            Source::Report(file) => write!(f, "report {file}"),
        }
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(' ') {
            None if s == "manual" => Ok(Source::Manual),
            Some(("bounce", id)) if !id.is_empty() => Ok(Source::Bounce(id.to_string())),
            Some(("report", file)) if !file.is_empty() => Ok(Source::Report(file.to_string())),
            _ => Err(format!("source {s:?} is not \"manual\", \"bounce <queue id>\" or \"report <file>\"")),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Date {
    /// `YYYY-MM-DD`, for replies.
    pub fn day(&self) -> String {
        self.to_string()[..10].to_string()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (y, m, d) = homing_smtp::date::civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

impl FromStr for Date {
    type Err = String;

    /// RFC 3339 §5.6 `date-time` in UTC (`Z`), fractions of a second ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("date {s:?} is not RFC 3339 UTC like \"2026-11-20T14:03:19Z\"");
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Result<u64, String> {
            let part = s.get(r).ok_or_else(bad)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return Err(bad());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let rest = s.get(19..).ok_or_else(bad)?;
        let rest = match rest.strip_prefix('.') {
            Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
            None => rest,
        };
        if !matches!(rest, "Z" | "z") {
            return Err(bad());
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        if homing_smtp::date::civil_from_days(days) != (y as i64, mo as u32, d as u32) {
            return Err(bad()); // e.g. February 30
        }
        let secs = days as u64 * 86_400 + h * 3600 + mi * 60 + sec;
        Ok(Date(UNIX_EPOCH + Duration::from_secs(secs)))
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date; the inverse of
/// `homing_smtp::date::civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Line {
    /// The address the line is about, as written.
    pub fn address(&self) -> &str {
        match self {
            Line::Add(e) => &e.address,
            Line::Remove { address, .. } => address,
        }
    }

    /// The line as written to the file, with its newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Cannot fail: every field is a string or a string-keyed struct.
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}
