//! What one delivery attempt observed, before any interpretation.

use homing_smtp::{EnhancedStatus, Reply};

use crate::taxonomy::Stage;

/// A remote SMTP reply, kept verbatim (RFC 5321 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplyEvidence {
    /// The three-digit reply code; anything else is kept and treated as unknown.
    pub code: u16,
    /// The enhanced status code (RFC 3463) as sent, e.g. `"5.1.1"`.
    pub status: Option<String>,
    /// The reply text without code prefixes, lines joined by `"\n"`.
    pub text: String,
}

impl ReplyEvidence {
    /// The enhanced status: the `status` field, or else a leading `x.y.z` in the text (for
    /// callers that did not split it off). Invalid codes are ignored.
    pub fn enhanced_status(&self) -> Option<EnhancedStatus> {
        if let Some(s) = &self.status {
            return s.trim().parse().ok();
        }
        self.text.split_whitespace().next()?.parse().ok()
    }

    /// The reply on one line, as used in a DSN `Diagnostic-Code` (RFC 3464 §2.3.6):
    /// `550 5.1.1 text; more text`, without CR or LF.
    pub fn one_line(&self) -> String {
        // Code 0 stands for "no reply code was given" (a bounce's prose); it is not shown.
        let mut out = if self.code == 0 { String::new() } else { self.code.to_string() };
        if let Some(s) = &self.status {
            let s = s.trim();
            if !s.is_empty() && !self.text.trim_start().starts_with(s) {
                out.push(' ');
                out.push_str(s);
            }
        }
        let lines: Vec<&str> =
            self.text.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty()).collect();
        if !lines.is_empty() {
            out.push(' ');
            out.push_str(&lines.join("; "));
        }
        out.trim_start().to_string()
    }
}

impl From<&Reply> for ReplyEvidence {
    fn from(reply: &Reply) -> Self {
        Self { code: reply.code, status: reply.status.map(|s| s.to_string()), text: reply.lines.join("\n") }
    }
}

/// The outcome of resolving the destination domain (RFC 5321 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsEvidence {
    /// The domain does not exist (RCODE 3).
    NxDomain,
    /// The domain publishes a null MX, `MX 0 .` (RFC 7505 §3).
    NullMx,
    /// The domain exists but has no MX and no A/AAAA to fall back to (RFC 5321 §5.1).
    NoMailHost,
    /// A temporary failure (SERVFAIL, timeout), with the resolver's words.
    TempFail(String),
    /// The MX points back at this host (RFC 5321 §5.1 "loop"), with details.
    MailLoop(String),
}

impl DnsEvidence {
    /// The lowercase name used in rules files.
    pub const fn kind(&self) -> &'static str {
        match self {
            DnsEvidence::NxDomain => "nxdomain",
            DnsEvidence::NullMx => "nullmx",
            DnsEvidence::NoMailHost => "nomailhost",
            DnsEvidence::TempFail(_) => "tempfail",
            DnsEvidence::MailLoop(_) => "mailloop",
        }
    }

    /// Every kind name, for validating rules files.
    pub const KINDS: &'static [&'static str] = &["nxdomain", "nullmx", "nomailhost", "tempfail", "mailloop"];

    /// The free text carried by the variant, if any.
    pub fn detail(&self) -> &str {
        match self {
            DnsEvidence::TempFail(s) | DnsEvidence::MailLoop(s) => s,
            _ => "",
        }
    }
}

/// Everything one attempt observed, for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// How far the attempt got.
    pub stage: Stage,
    /// The remote reply that ended the attempt, if one came.
    pub reply: Option<ReplyEvidence>,
    /// The DNS outcome, when resolving failed.
    pub dns: Option<DnsEvidence>,
    /// The connect or I/O error text, e.g. "connection refused".
    pub network: Option<String>,
    /// The TLS failure text, e.g. "STARTTLS not offered" or a handshake error.
    pub tls: Option<String>,
    /// The recipient's domain.
    pub domain: String,
    /// The MX host name tried, when known.
    pub remote_host: Option<String>,
    /// The IP address tried, when known.
    pub remote_ip: Option<String>,
}

impl Evidence {
    /// Evidence of a remote reply at `stage`, the common case.
    pub fn from_reply(stage: Stage, domain: impl Into<String>, reply: &Reply) -> Self {
        Self { reply: Some(reply.into()), ..Self::bare(stage, domain) }
    }

    /// Evidence with nothing observed yet but the stage and domain; fill in the rest.
    pub fn bare(stage: Stage, domain: impl Into<String>) -> Self {
        Self {
            stage,
            reply: None,
            dns: None,
            network: None,
            tls: None,
            domain: domain.into(),
            remote_host: None,
            remote_ip: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_field_or_text() {
        let r = ReplyEvidence { code: 550, status: None, text: "5.1.1 <a@b>: no such user".into() };
        assert_eq!(r.enhanced_status(), Some(EnhancedStatus::new(5, 1, 1)));
        let r = ReplyEvidence { code: 550, status: Some("junk".into()), text: "5.1.1 x".into() };
        assert_eq!(r.enhanced_status(), None);
    }

    #[test]
    fn one_line_joins_lines_and_drops_newlines() {
        let reply = Reply::multiline(
            550,
            Some(EnhancedStatus::new(5, 7, 1)),
            vec!["first\r".into(), "second".into()],
        );
        let r = ReplyEvidence::from(&reply);
        assert_eq!(r.text, "first\r\nsecond");
        assert_eq!(r.one_line(), "550 5.7.1 first; second");
    }
}
