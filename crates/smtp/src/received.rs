//! The `Received:` trace field homing prepends to every message it accepts
//! (RFC 5321 §4.4, protocol names from RFC 3848 and RFC 6531 §3.7.3).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::date::rfc5322;

/// The `with` protocol (RFC 3848 §2, RFC 6531 §3.7.3 for the UTF8 forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Esmtp,
    /// ESMTP over TLS.
    Esmtps,
    /// ESMTP, authenticated.
    Esmtpa,
    /// ESMTP over TLS, authenticated.
    Esmtpsa,
    Utf8Smtp,
    Utf8Smtps,
    Utf8Smtpa,
    Utf8Smtpsa,
}

impl Protocol {
    /// The protocol of a session: EHLO or HELO, TLS, authentication, SMTPUTF8 transaction.
    pub fn of_session(esmtp: bool, tls: bool, auth: bool, utf8: bool) -> Protocol {
        match (esmtp, tls, auth, utf8) {
            (false, ..) => Protocol::Smtp,
            (true, false, false, false) => Protocol::Esmtp,
            (true, true, false, false) => Protocol::Esmtps,
            (true, false, true, false) => Protocol::Esmtpa,
            (true, true, true, false) => Protocol::Esmtpsa,
            (true, false, false, true) => Protocol::Utf8Smtp,
            (true, true, false, true) => Protocol::Utf8Smtps,
            (true, false, true, true) => Protocol::Utf8Smtpa,
            (true, true, true, true) => Protocol::Utf8Smtpsa,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Smtp => "SMTP",
            Protocol::Esmtp => "ESMTP",
            Protocol::Esmtps => "ESMTPS",
            Protocol::Esmtpa => "ESMTPA",
            Protocol::Esmtpsa => "ESMTPSA",
            Protocol::Utf8Smtp => "UTF8SMTP",
            Protocol::Utf8Smtps => "UTF8SMTPS",
            Protocol::Utf8Smtpa => "UTF8SMTPA",
            Protocol::Utf8Smtpsa => "UTF8SMTPSA",
        }
    }
}

/// What goes into one `Received:` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedInfo {
    /// The EHLO/HELO name as the client sent it.
    pub helo: String,
    pub peer_ip: IpAddr,
    /// The peer's verified reverse DNS name, if any.
    pub peer_name: Option<String>,
    /// This server's hostname.
    pub by: String,
    /// The queue id.
    pub id: String,
    pub protocol: Protocol,
    /// TLS version and cipher, e.g. `TLSv1.3 TLS_AES_128_GCM_SHA256`.
    pub tls: Option<String>,
    /// The recipient, written only when the message has exactly one (RFC 5321 §7.2).
    pub for_rcpt: Option<String>,
    pub date: SystemTime,
}

/// Keeps text from the client from breaking the field: controls, parentheses, backslashes,
/// angle brackets and semicolons become `_`.
fn clean(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() || c.is_whitespace() || "()\\<>;".contains(c) { '_' } else { c })
        .collect();
    if s.is_empty() { "unknown".into() } else { s }
}

fn literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// The complete field, `Received: ...`, folded onto continuation lines starting with a tab (shown as spaces),
/// every line ending in CRLF:
///
/// ```text
/// Received: from client.example (mail.client.example [192.0.2.1])
///     by mx.example (homing) with ESMTPS id 01ABC
///     (TLSv1.3 TLS_AES_128_GCM_SHA256)
///     for <user@example.org>; Mon, 23 Nov 2026 14:03:19 +0000
/// ```
pub fn received_header(info: &ReceivedInfo) -> String {
    let mut h = String::new();
    // RFC 5321 §4.4 Extended-Domain: the claimed name, then (TCP-info) as seen.
    let tcp = match &info.peer_name {
        Some(name) => format!("{} {}", clean(name), literal(info.peer_ip)),
        None => literal(info.peer_ip),
    };
    let _ = write!(h, "Received: from {} ({tcp})\r\n", clean(&info.helo));
    let _ = write!(
        h,
        "\tby {} (homing) with {} id {}\r\n",
        clean(&info.by),
        info.protocol.as_str(),
        clean(&info.id)
    );
    if let Some(tls) = &info.tls {
        let tls: String =
            tls.chars().map(|c| if c.is_control() || "()\\".contains(c) { ' ' } else { c }).collect();
        let _ = write!(h, "\t({})\r\n", tls.trim());
    }
    let date = rfc5322(info.date);
    match &info.for_rcpt {
        Some(rcpt) => {
            let _ = write!(h, "\tfor <{}>; {date}\r\n", clean(rcpt));
        }
        None => {
            let _ = write!(h, "\t; {date}\r\n");
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn info() -> ReceivedInfo {
        ReceivedInfo {
            helo: "client.example".into(),
            peer_ip: "192.0.2.1".parse().unwrap(),
            peer_name: Some("mail.client.example".into()),
            by: "mx.example".into(),
            id: "01ABC".into(),
            protocol: Protocol::Esmtps,
            tls: Some("TLSv1.3 TLS_AES_128_GCM_SHA256".into()),
            for_rcpt: Some("user@example.org".into()),
            date: UNIX_EPOCH + Duration::from_secs(1_795_442_599),
        }
    }

    #[test]
    fn full_field() {
        assert_eq!(
            received_header(&info()),
            "Received: from client.example (mail.client.example [192.0.2.1])\r\n\
             \tby mx.example (homing) with ESMTPS id 01ABC\r\n\
             \t(TLSv1.3 TLS_AES_128_GCM_SHA256)\r\n\
             \tfor <user@example.org>; Mon, 23 Nov 2026 14:03:19 +0000\r\n"
        );
    }

    #[test]
    fn minimal_and_hostile() {
        let mut i = info();
        i.helo = "evil\r\nBcc: x (y)".into();
        i.peer_ip = "2001:db8::1".parse().unwrap();
        i.peer_name = None;
        i.tls = None;
        i.for_rcpt = None;
        i.protocol = Protocol::of_session(false, false, false, false);
        let h = received_header(&i);
        assert!(h.starts_with("Received: from evil__Bcc:_x__y_ ([IPv6:2001:db8::1])\r\n"), "{h}");
        assert!(h.contains("with SMTP id"));
        assert!(h.ends_with("\t; Mon, 23 Nov 2026 14:03:19 +0000\r\n"));
        assert_eq!(h.matches("\r\n").count(), 3);
        assert!(!h.replace("\r\n", "").contains(['\r', '\n']));
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::of_session(true, true, true, false).as_str(), "ESMTPSA");
        assert_eq!(Protocol::of_session(true, false, false, true).as_str(), "UTF8SMTP");
        assert_eq!(Protocol::of_session(true, true, false, false).as_str(), "ESMTPS");
    }
}
