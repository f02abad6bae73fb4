//! SMTP replies (RFC 5321 §4.2) and enhanced status codes (RFC 3463, RFC 2034).

use std::fmt;
use std::str::FromStr;

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedStatus {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self { class, subject, detail }
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Why a string is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an enhanced status code (RFC 3463 §2 wants class.subject.detail, class 2, 4 or 5): {0:?}")]
pub struct BadEnhancedStatus(pub String);

impl FromStr for EnhancedStatus {
    type Err = BadEnhancedStatus;

    /// Parses `class.subject.detail`; subject and detail are 1–3 digits (RFC 3463 §2).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEnhancedStatus(s.to_string());
        let mut parts = s.split('.');
        let (Some(c), Some(sub), Some(det), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let digits =
            |p: &str, max: usize| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit());
        if !(digits(c, 1) && digits(sub, 3) && digits(det, 3)) {
            return Err(bad());
        }
        let class: u8 = c.parse().map_err(|_| bad())?;
        if !matches!(class, 2 | 4 | 5) {
            return Err(bad());
        }
        Ok(Self { class, subject: sub.parse().map_err(|_| bad())?, detail: det.parse().map_err(|_| bad())? })
    }
}

/// One SMTP reply: a three-digit code, an optional enhanced status code and one or more
/// text lines (RFC 5321 §4.2.1). The text is kept verbatim, without the code prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<EnhancedStatus>,
    /// Text lines without the `NNN-`/`NNN ` prefix and without the enhanced status code.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, status: Option<EnhancedStatus>, text: impl Into<String>) -> Self {
        Self { code, status, lines: vec![text.into()] }
    }

    /// A multi-line reply; an empty `lines` is treated as one empty line.
    pub fn multiline(code: u16, status: Option<EnhancedStatus>, lines: Vec<String>) -> Self {
        let lines = if lines.is_empty() { vec![String::new()] } else { lines };
        Self { code, status, lines }
    }

    /// 2xx and 3xx: the command was accepted (RFC 5321 §4.2.1).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: a transient failure; the same command may succeed later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: a permanent failure.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The reply as sent on the wire: every line prefixed by the code (with `-` on all but the
    /// last line) and, when present, the enhanced status code (RFC 2034 §4), ending in CRLF.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.lines.iter().map(|l| l.len() + 16).sum::<usize>());
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let text = line.replace(['\r', '\n'], " ");
            let l = match self.status {
                Some(s) if text.is_empty() => format!("{}{}{}\r\n", self.code, sep, s),
                Some(s) => format!("{}{}{} {}\r\n", self.code, sep, s, text),
                None => format!("{}{}{}\r\n", self.code, sep, text),
            };
            out.extend_from_slice(l.as_bytes());
        }
        out
    }
}

/// One line for logs and DSN `Diagnostic-Code` fields: `550 5.1.1 text; more text`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        let text: Vec<&str> = self.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
        if !text.is_empty() {
            write!(f, " {}", text.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_round_trips() {
        let s: EnhancedStatus = "5.1.10".parse().unwrap();
        assert_eq!(s, EnhancedStatus::new(5, 1, 10));
        assert_eq!(s.to_string(), "5.1.10");
        for bad in ["", "5.1", "3.1.1", "5.1.1.1", "5..1", "5.1000.1", "a.b.c", "55.1.1"] {
            assert!(bad.parse::<EnhancedStatus>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wire_format_prefixes_every_line() {
        let r = Reply::multiline(
            250,
            None,
            vec!["mx.example Hello".into(), "PIPELINING".into(), "8BITMIME".into()],
        );
        assert_eq!(r.to_wire(), b"250-mx.example Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        let r = Reply::new(550, Some(EnhancedStatus::new(5, 1, 1)), "no such user\r\nx");
        assert_eq!(r.to_wire(), b"550 5.1.1 no such user  x\r\n");
        assert_eq!(r.to_string(), "550 5.1.1 no such user\r\nx");
    }
}
