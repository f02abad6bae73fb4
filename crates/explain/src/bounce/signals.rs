//! Small signals read out of free text: an enhanced status code (RFC 3463), a reply code
//! (RFC 5321 §4.2), and the transaction stage the text says the failure happened at.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::taxonomy::{Reason, Stage};

/// The first failure status code `class.subject.detail` (class 4 or 5) in `text` (RFC 3463
/// §2), not part of a longer dotted number such as an IP address or a version.
pub fn status_in(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Success codes (2.x.x) in a transcript are not the failure's status.
        if matches!(b[i], b'4' | b'5')
            && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.'))
            && b.get(i + 1) == Some(&b'.')
        {
            let (subject, j) = digits(b, i + 2, 3);
            if subject > 0 && b.get(j) == Some(&b'.') {
                let (detail, k) = digits(b, j + 1, 3);
                let boundary = b.get(k).is_none_or(|c| {
                    !(c.is_ascii_digit() || *c == b'.' && b.get(k + 1).is_some_and(u8::is_ascii_digit))
                });
                if detail > 0 && boundary {
                    return Some(text[i..k].to_string());
                }
            }
        }
        i += 1;
    }
    None
}

/// Counts up to `max` digits from `at`: (how many, index after them).
fn digits(b: &[u8], at: usize, max: usize) -> (usize, usize) {
    let mut n = 0;
    while n < max && b.get(at + n).is_some_and(u8::is_ascii_digit) {
        n += 1;
    }
    (n, at + n)
}

/// The first SMTP reply code in `text`: three digits starting 4 or 5, standing alone or
/// followed by `-` (a continuation line), optionally after `#` (Exchange) or `<<< `.
pub fn reply_code(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    for i in 0..b.len().saturating_sub(2) {
        if !matches!(b[i], b'4' | b'5') || !b[i + 1].is_ascii_digit() || !b[i + 2].is_ascii_digit() {
            continue;
        }
        let before_ok = i == 0
            || matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'#' | b'\'' | b'"' | b'(' | b'[' | b':' | b';');
        let after_ok = b.get(i + 3).is_none_or(|c| matches!(c, b' ' | b'-' | b'\r' | b'\n' | b'\t'));
        // "5.1.1" style neighbours and sizes such as "552 bytes" are not codes; the
        // second digit of a reply code is 0-5 (RFC 5321 §4.2.1).
        if before_ok && after_ok && b[i + 1] <= b'5' {
            let code = (b[i] - b'0') as u16 * 100 + (b[i + 1] - b'0') as u16 * 10 + (b[i + 2] - b'0') as u16;
            return Some(code);
        }
    }
    None
}

/// How much of a text [`stage_of`] reads.
const STAGE_SCAN: usize = 8 * 1024;

/// The SMTP stage a failure text names, in the words Postfix, Exim, Sendmail, qmail and
/// others use for it. In a session transcript (`>>> RCPT To:…` / `<<< 550 …`), the
/// stage is the last command sent before the first error reply.
pub fn stage_of(text: &str) -> Option<Stage> {
    // The stage is named near the reply; long reports need not be read to the end.
    let t = super::clip(text, STAGE_SCAN);
    if let Some(err) = first_error_reply(t)
        && let Some(at) = t[..err].rfind(">>> ")
    {
        let cmd = &t.as_bytes()[at + 4..];
        let stage = [
            (&b"rcpt"[..], Stage::Rcpt),
            (b"mail", Stage::Mail),
            (b"data", Stage::Data),
            (b"ehlo", Stage::Ehlo),
            (b"helo", Stage::Ehlo),
            (b"starttls", Stage::StartTls),
        ]
        .iter()
        .find(|(c, _)| cmd.len() >= c.len() && cmd[..c.len()].eq_ignore_ascii_case(c))
        .map(|(_, s)| *s);
        if stage.is_some() {
            return stage;
        }
    }
    static WORDS: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    let words = WORDS.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(STAGES.iter().map(|(k, _)| k))
            .ok()
    });
    words.as_ref()?.find(t).map(|m| STAGES[m.pattern().as_usize()].1)
}

/// Words that name the stage a reply answered, as servers write them.
const STAGES: &[(&str, Stage)] = &[
    ("in reply to rcpt to", Stage::Rcpt),
    ("after rcpt to", Stage::Rcpt),
    ("in reply to mail from", Stage::Mail),
    ("after mail from", Stage::Mail),
    ("sender was rejected", Stage::Mail),
    ("in reply to end of data", Stage::Dot),
    ("after end of data", Stage::Dot),
    ("did not like our final data", Stage::Dot),
    ("in reply to data", Stage::Data),
    ("after data", Stage::Data),
    ("in reply to helo", Stage::Ehlo),
    ("in reply to ehlo", Stage::Ehlo),
    ("after helo", Stage::Ehlo),
    ("after ehlo", Stage::Ehlo),
    ("my name was rejected", Stage::Ehlo),
    ("after initial connection", Stage::Greeting),
    ("in reply to starttls", Stage::StartTls),
    ("connection refused", Stage::Connect),
    ("connection timed out", Stage::Connect),
    ("host or domain name not found", Stage::Route),
];

/// Where the first `<<< 4xx`/`<<< 5xx` line of a transcript starts.
fn first_error_reply(t: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = t[from..].find("<<< ").map(|i| i + from) {
        if matches!(t.as_bytes().get(at + 4), Some(b'4' | b'5')) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The remote server a failure text names, in the words MTAs use: Postfix's
/// `host mx.example.com[192.0.2.1] said`, Exim's `host mx.example.com [192.0.2.1]:`,
/// Sendmail's `while talking to mx.example.com.:`, qmail's `Connected to 192.0.2.1 but`,
/// Postfix's `connect to mx.example.com[192.0.2.1]:25: Connection timed out`.
pub fn remote_host(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    for (marker, after) in
        [("while talking to ", true), ("host ", true), ("connect to ", true), ("connected to ", false)]
    {
        let mut from = 0;
        while let Some(at) = lower[from..].find(marker).map(|i| i + from) {
            from = at + marker.len();
            let word_start = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
            let rest = &text[from..];
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
                .collect();
            let token = token.trim_end_matches([':', '.']);
            let next = rest[token.len()..].trim_start_matches('.').chars().next();
            let host_like = token.contains('.') && token.len() >= 4 && token.len() <= 255;
            let followed = !after || matches!(next, Some('[' | ' ' | ':' | ',') | None);
            if word_start && host_like && followed {
                return Some(token.to_string());
            }
        }
    }
    None
}

/// The placeholder status for a reason when the report carries no code at all:
/// `class.0.9NN`, the convention of Sisimai (the de facto bounce classifier), so results
/// can be compared with it. The `0` subject says "no standard code was given"
/// (RFC 3463 §3.1, "Other or undefined"), and the detail names the reason.
pub fn pseudo_status(reason: Reason, hard: bool) -> String {
    let detail = match reason {
        Reason::Undefined => 900,
        Reason::OnHold => 901,
        Reason::SyntaxError => 902,
        Reason::NoRelaying => 909,
        Reason::Filtered => 910,
        Reason::UserUnknown => 911,
        Reason::HostUnknown => 912,
        Reason::HasMoved => 916,
        Reason::Rejected => 918,
        Reason::Suspend => 921,
        Reason::MailboxFull => 922,
        Reason::ExceedLimit => 923,
        Reason::SystemError => 930,
        Reason::SystemFull => 931,
        Reason::NotAccept => 932,
        Reason::MesgTooBig => 934,
        Reason::MailerError => 939,
        Reason::NetworkError => 944,
        Reason::TooManyConn => 945,
        Reason::Expired => 947,
        Reason::ContentError => 960,
        Reason::SecurityError => 970,
        Reason::FailedStartTls => 976,
        Reason::Blocked => 971,
        Reason::PolicyViolation => 972,
        Reason::SpamDetected | Reason::VirusDetected => 980,
        _ => 900,
    };
    format!("{}.0.{detail}", if hard { 5 } else { 4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_not_ips() {
        assert_eq!(status_in("host 192.0.2.1 said: 550 5.1.1 unknown").as_deref(), Some("5.1.1"));
        assert_eq!(status_in("version 4.2.1.5 then 4.4.7."), Some("4.4.7".into()));
        assert_eq!(status_in("#550 5.2.2 STOREDRV"), Some("5.2.2".into()));
        assert_eq!(status_in("no code"), None);
    }

    #[test]
    fn reply_codes() {
        assert_eq!(reply_code("host said: 550-5.1.1 The email"), Some(550));
        assert_eq!(reply_code("#554 5.7.1"), Some(554));
        assert_eq!(reply_code("size 5000 bytes 5.1.1"), None);
        assert_eq!(reply_code("error 599"), None);
    }

    #[test]
    fn stages() {
        assert_eq!(stage_of("550 x (in reply to RCPT TO command)"), Some(Stage::Rcpt));
        assert_eq!(stage_of("SMTP error from remote mail server after end of data"), Some(Stage::Dot));
        assert_eq!(stage_of("nothing"), None);
    }

    #[test]
    fn remote_hosts() {
        assert_eq!(
            remote_host("host mx.example.com[192.0.2.1] said: 550").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(
            remote_host("    host mx.example.org [192.0.2.1]: 550 x").as_deref(),
            Some("mx.example.org")
        );
        assert_eq!(remote_host("... while talking to mx.example.jp.:").as_deref(), Some("mx.example.jp"));
        assert_eq!(remote_host("Connected to 192.0.2.112 but my name").as_deref(), Some("192.0.2.112"));
        assert_eq!(remote_host("the host is down"), None);
    }

    #[test]
    fn pseudo_codes() {
        assert_eq!(pseudo_status(Reason::UserUnknown, true), "5.0.911");
        assert_eq!(pseudo_status(Reason::Expired, false), "4.0.947");
    }
}
