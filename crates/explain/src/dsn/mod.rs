//! Delivery status notifications: a `multipart/report` (RFC 6522) whose parts are a plain
//! explanation for people, a `message/delivery-status` for programs (RFC 3464), and the
//! original message or its header section (RFC 3461 §4.3 RET, RFC 6522 §3).

mod notice;
pub(crate) mod wire;

use std::fmt;
use std::time::SystemTime;

use homing_smtp::EnhancedStatus;
use homing_smtp::date::rfc5322;

use crate::explanation::Explanation;

/// What happened to one recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl DsnAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
            DsnAction::Expanded => "expanded",
        }
    }

    /// The status to report when none valid was given: a class that fits the action.
    const fn default_status(self) -> &'static str {
        match self {
            DsnAction::Failed => "5.0.0",
            DsnAction::Delayed => "4.0.0",
            _ => "2.0.0",
        }
    }
}

impl fmt::Display for DsnAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient's block of the report (RFC 3464 §2.3).
#[derive(Debug, Clone)]
pub struct DsnRecipient {
    /// The address the attempt was made for.
    pub final_recipient: String,
    /// The ORCPT parameter as given, e.g. `"rfc822;a@b"` (RFC 3461 §4.2).
    pub original_recipient: Option<String>,
    pub action: DsnAction,
    /// The enhanced status (RFC 3463), e.g. `"5.1.1"`; an invalid one is replaced by the
    /// explanation's, or by a generic one for the action.
    pub status: String,
    /// The remote MTA's host name.
    pub remote_mta: Option<String>,
    /// The remote reply, verbatim, e.g. `"550 5.1.1 <a@b>: User unknown"`.
    pub diagnostic: Option<String>,
    pub last_attempt: Option<SystemTime>,
    /// Until when homing retries (delays only, RFC 3464 §2.3.7).
    pub will_retry_until: Option<SystemTime>,
    pub explanation: Option<Explanation>,
}

impl DsnRecipient {
    /// The status to write: given, else the explanation's, else a generic one.
    fn status(&self) -> String {
        [Some(self.status.as_str()), self.explanation.as_ref().map(|e| e.status.as_str())]
            .into_iter()
            .flatten()
            .find_map(|s| s.trim().parse::<EnhancedStatus>().ok())
            .map_or_else(|| self.action.default_status().to_string(), |s| s.to_string())
    }

    /// The remote reply on one line: given, else the one the explanation rests on.
    fn diagnostic(&self) -> Option<String> {
        let given = self.diagnostic.as_deref().map(wire::one_line);
        given.filter(|d| !d.is_empty()).or_else(|| {
            self.explanation
                .as_ref()
                .and_then(|e| e.evidence.reply.as_ref())
                .map(|r| wire::one_line(&r.one_line()))
        })
    }

    fn remote_mta(&self) -> Option<String> {
        let given = self.remote_mta.as_deref().map(wire::one_line);
        given.filter(|m| !m.is_empty()).or_else(|| {
            self.explanation
                .as_ref()
                .and_then(|e| e.evidence.remote_host.as_deref())
                .map(wire::one_line)
                .filter(|m| !m.is_empty())
        })
    }
}

/// Everything a report needs; `original` is the message as spooled.
#[derive(Debug, Clone)]
pub struct DsnReport<'a> {
    /// This server's host name.
    pub reporting_mta: String,
    /// The `From:` address, e.g. `"MAILER-DAEMON@mx.example.net"`.
    pub postmaster: String,
    /// The envelope return path of the original message.
    pub to: String,
    pub date: SystemTime,
    /// `"<id@host>"`.
    pub message_id: String,
    /// The ENVID parameter (RFC 3461 §4.4).
    pub envid: Option<String>,
    pub queue_id: String,
    pub arrival_date: SystemTime,
    /// `"dns; helo-name"` of the client that handed us the message.
    pub received_from_mta: Option<String>,
    /// RET=FULL (RFC 3461 §4.3): attach the whole message, not only its header section.
    pub return_full: bool,
    pub original: &'a [u8],
    pub recipients: Vec<DsnRecipient>,
}

/// Writes the report as a complete RFC 5322 message with CRLF line endings.
pub fn build(report: &DsnReport) -> Vec<u8> {
    let text = wire::quoted_printable(&notice::text(report));
    let status = delivery_status(report);
    let (original, original_type, description) = if report.return_full {
        (wire::crlf(report.original), "message/rfc822", "Undelivered message")
    } else {
        (wire::header_section(report.original), "text/rfc822-headers", "Undelivered message headers")
    };
    let seed = format!("{}|{}|{:?}", report.queue_id, report.message_id, report.date);
    let boundary = wire::boundary(seed.as_bytes(), &[&text, &status, &original]);

    let mut out = Vec::with_capacity(text.len() + status.len() + original.len() + 2048);
    out.extend_from_slice(headers(report, &boundary).as_bytes());
    out.extend_from_slice(b"\r\nThis is a MIME-formatted delivery status notification (RFC 3464).\r\n");

    let mut part = |content_type: &str, extra: &str, body: &[u8]| {
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        out.extend_from_slice(format!("Content-Type: {content_type}\r\n{extra}\r\n").as_bytes());
        // The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1), so the
        // body goes out exactly as it is.
        out.extend_from_slice(body);
    };
    part(
        "text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable\r\nContent-Description: Notification\r\n",
        &text,
    );
    part("message/delivery-status", "Content-Description: Delivery report\r\n", &status);
    part(
        original_type,
        &format!(
            "Content-Transfer-Encoding: {}\r\nContent-Description: {description}\r\n",
            wire::transfer_encoding(&original)
        ),
        &original,
    );
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The subject: what happened, in the words a person expects from a bounce.
fn subject(report: &DsnReport) -> String {
    let any = |a: DsnAction| report.recipients.iter().any(|r| r.action == a);
    if any(DsnAction::Failed) {
        "Undelivered Mail Returned to Sender".into()
    } else if any(DsnAction::Delayed) {
        let why = report
            .recipients
            .iter()
            .filter(|r| r.action == DsnAction::Delayed)
            .find_map(|r| r.explanation.as_ref())
            .map_or("message not delivered yet", |e| e.reason.phrase());
        format!("Delivery delayed: {why}")
    } else if any(DsnAction::Relayed) {
        "Delivery Status Notification: relayed".into()
    } else {
        "Delivery Status Notification: delivered".into()
    }
}

fn headers(report: &DsnReport, boundary: &str) -> String {
    let postmaster = wire::one_line(&report.postmaster);
    let from =
        if postmaster.contains('<') { postmaster } else { format!("Mail Delivery System <{postmaster}>") };
    let to = wire::one_line(&report.to);
    let to = to.trim_start_matches('<').trim_end_matches('>');
    let to = if to.is_empty() { "undisclosed-recipients:;".to_string() } else { format!("<{to}>") };
    let id = wire::one_line(&report.message_id);
    let id = format!("<{}>", id.trim_start_matches('<').trim_end_matches('>'));
    let mut h = String::new();
    h.push_str(&wire::field("From", &from));
    h.push_str(&wire::field("To", &to));
    h.push_str(&wire::field("Subject", &subject(report)));
    h.push_str(&wire::field("Date", &rfc5322(report.date)));
    h.push_str(&wire::field("Message-ID", &id));
    // RFC 3834 §5: automatic responses are marked so that they are never answered.
    h.push_str(&wire::field("Auto-Submitted", "auto-replied"));
    h.push_str(&wire::field("MIME-Version", "1.0"));
    h.push_str(&wire::field(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    ));
    h
}

/// The `message/delivery-status` body (RFC 3464 §2.1–§2.3).
fn delivery_status(report: &DsnReport) -> Vec<u8> {
    let mut s = String::new();
    s.push_str(&wire::field("Reporting-MTA", &format!("dns; {}", wire::ascii(&report.reporting_mta))));
    if let Some(envid) = report.envid.as_deref().map(wire::ascii).filter(|e| !e.is_empty()) {
        s.push_str(&wire::field("Original-Envelope-Id", &envid));
    }
    if !report.queue_id.trim().is_empty() {
        s.push_str(&wire::field("X-Homing-Queue-ID", &wire::ascii(&report.queue_id)));
    }
    if let Some(from) = report.received_from_mta.as_deref().map(wire::ascii).filter(|f| !f.is_empty()) {
        let typed = if from.contains(';') { from } else { format!("dns; {from}") };
        s.push_str(&wire::field("Received-From-MTA", &typed));
    }
    s.push_str(&wire::field("Arrival-Date", &rfc5322(report.arrival_date)));

    for r in &report.recipients {
        s.push_str("\r\n");
        if let Some(orcpt) = r.original_recipient.as_deref().map(wire::ascii).filter(|o| !o.is_empty()) {
            let typed = match orcpt.split_once(';') {
                Some((kind, addr)) => format!("{}; {}", kind.trim(), addr.trim()),
                None => format!("rfc822; {orcpt}"),
            };
            s.push_str(&wire::field("Original-Recipient", &typed));
        }
        s.push_str(&wire::field("Final-Recipient", &wire::address(&r.final_recipient)));
        s.push_str(&wire::field("Action", r.action.as_str()));
        s.push_str(&wire::field("Status", &r.status()));
        if let Some(mta) = r.remote_mta() {
            s.push_str(&wire::field("Remote-MTA", &format!("dns; {}", wire::ascii(&mta))));
        }
        if let Some(diag) = r.diagnostic() {
            s.push_str(&wire::field("Diagnostic-Code", &format!("smtp; {}", wire::ascii(&diag))));
        }
        if let Some(t) = r.last_attempt {
            s.push_str(&wire::field("Last-Attempt-Date", &rfc5322(t)));
        }
        if let (DsnAction::Delayed, Some(t)) = (r.action, r.will_retry_until) {
            s.push_str(&wire::field("Will-Retry-Until", &rfc5322(t)));
        }
        if let Some(e) = &r.explanation {
            s.push_str(&wire::field("X-Homing-Reason", e.reason.as_str()));
        }
    }
    s.into_bytes()
}
