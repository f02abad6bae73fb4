//! DSNs read back: RFC 3464 fields, RFC 6522 structure, RET=HDRS/FULL (RFC 3461 §4.3).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homing_explain::dsn::{DsnAction, DsnRecipient, DsnReport, build};
use homing_explain::{Evidence, Explanation, ReplyEvidence, Stage, explain};
use support::{get, groups, parse, unqp};

const ORIGINAL: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Lunch\r\nMessage-ID: <m1@example.org>\r\n\r\nSee you at noon.\r\nSECRET BODY LINE\r\n";
const REPLY: &str =
    "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn user_unknown() -> DsnRecipient {
    let mut ev = Evidence::bare(Stage::Rcpt, "example.com");
    ev.remote_host = Some("mx.example.com".into());
    ev.reply = Some(ReplyEvidence {
        code: 550,
        status: Some("5.1.1".into()),
        text: "<bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table".into(),
    });
    let e = explain(&ev);
    DsnRecipient {
        final_recipient: "bob@example.com".into(),
        original_recipient: Some("rfc822;Bob@Example.com".into()),
        action: DsnAction::Failed,
        status: e.status.clone(),
        remote_mta: Some("mx.example.com".into()),
        diagnostic: Some(REPLY.into()),
        last_attempt: Some(at(1_795_442_500)),
        will_retry_until: None,
        explanation: Some(e),
    }
}

fn mailbox_full_delayed() -> DsnRecipient {
    let mut ev = Evidence::bare(Stage::Rcpt, "example.net");
    ev.reply = Some(ReplyEvidence { code: 452, status: Some("4.2.2".into()), text: "Mailbox full".into() });
    let e = explain(&ev);
    DsnRecipient {
        final_recipient: "carol@example.net".into(),
        original_recipient: None,
        action: DsnAction::Delayed,
        status: e.status.clone(),
        remote_mta: Some("mx.example.net".into()),
        diagnostic: Some("452 4.2.2 Mailbox full".into()),
        last_attempt: Some(at(1_795_442_500)),
        will_retry_until: Some(at(1_795_442_599 + 5 * 86_400)),
        explanation: Some(e),
    }
}

fn report(recipients: Vec<DsnRecipient>, full: bool) -> DsnReport<'static> {
    DsnReport {
        reporting_mta: "mail.homing.test".into(),
        postmaster: "MAILER-DAEMON@mail.homing.test".into(),
        to: "alice@example.org".into(),
        date: at(1_795_442_599),
        message_id: "<dsn-1@mail.homing.test>".into(),
        envid: Some("QQ314159".into()),
        queue_id: "01J9ZQ".into(),
        arrival_date: at(1_795_442_000),
        received_from_mta: Some("dns; client.example.org".into()),
        return_full: full,
        original: ORIGINAL,
        recipients,
    }
}

#[test]
fn failure_report_has_every_required_field() {
    let out = build(&report(vec![user_unknown()], false));
    let r = parse(&out).unwrap();
    assert_eq!(r.header("From"), Some("Mail Delivery System <MAILER-DAEMON@mail.homing.test>"));
    assert_eq!(r.header("To"), Some("<alice@example.org>"));
    assert_eq!(r.header("Subject"), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(r.header("Date"), Some("Mon, 23 Nov 2026 14:03:19 +0000"));
    assert_eq!(r.header("Message-ID"), Some("<dsn-1@mail.homing.test>"));
    assert_eq!(r.header("Auto-Submitted"), Some("auto-replied"));
    assert_eq!(r.header("MIME-Version"), Some("1.0"));
    let ct = r.header("Content-Type").unwrap();
    assert!(ct.starts_with("multipart/report; report-type=delivery-status; boundary="), "{ct}");

    assert_eq!(r.parts.len(), 3);
    assert_eq!(r.parts[0].header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.parts[1].header("Content-Type"), Some("message/delivery-status"));
    assert_eq!(r.parts[2].header("Content-Type"), Some("text/rfc822-headers"));

    let g = groups(&r.parts[1].body).unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(get(&g[0], "Reporting-MTA"), Some("dns; mail.homing.test"));
    assert_eq!(get(&g[0], "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(get(&g[0], "Received-From-MTA"), Some("dns; client.example.org"));
    assert_eq!(get(&g[0], "Arrival-Date"), Some("Mon, 23 Nov 2026 13:53:20 +0000"));
    assert_eq!(get(&g[1], "Original-Recipient"), Some("rfc822; Bob@Example.com"));
    assert_eq!(get(&g[1], "Final-Recipient"), Some("rfc822; bob@example.com"));
    assert_eq!(get(&g[1], "Action"), Some("failed"));
    assert_eq!(get(&g[1], "Status"), Some("5.1.1"));
    assert_eq!(get(&g[1], "Remote-MTA"), Some("dns; mx.example.com"));
    assert_eq!(get(&g[1], "Diagnostic-Code"), Some(format!("smtp; {REPLY}").as_str()));
    assert!(get(&g[1], "Last-Attempt-Date").is_some());
    assert_eq!(get(&g[1], "Will-Retry-Until"), None);
}

#[test]
fn text_part_says_what_why_and_what_to_do() {
    let rcpt = user_unknown();
    let e = rcpt.explanation.clone().unwrap();
    let out = build(&report(vec![rcpt], false));
    let r = parse(&out).unwrap();
    assert_eq!(r.parts[0].header("Content-Transfer-Encoding"), Some("quoted-printable"));
    let text = unqp(&r.parts[0].body);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("<bob@example.com>: NOT delivered"), "{text}");
    assert!(flat.contains(&format!("Why: {}", e.cause)), "{text}");
    assert!(flat.contains(&format!("What to do: {}", e.fix)), "{text}");
    assert!(text.contains(REPLY), "reply verbatim on one line:\n{text}");
    assert!(text.contains("mx.example.com replied"));
}

#[test]
fn ret_hdrs_gives_only_the_header_section() {
    let out = build(&report(vec![user_unknown()], false));
    let r = parse(&out).unwrap();
    let body = String::from_utf8(r.parts[2].body.clone()).unwrap();
    assert!(body.contains("Subject: Lunch\r\n"));
    assert!(!body.contains("SECRET BODY LINE"));
}

#[test]
fn ret_full_gives_the_whole_message() {
    let out = build(&report(vec![user_unknown()], true));
    let r = parse(&out).unwrap();
    assert_eq!(r.parts[2].header("Content-Type"), Some("message/rfc822"));
    assert_eq!(r.parts[2].body, ORIGINAL);
}

#[test]
fn delay_report_says_until_when() {
    let out = build(&report(vec![mailbox_full_delayed()], false));
    let r = parse(&out).unwrap();
    assert_eq!(r.header("Subject"), Some("Delivery delayed: the recipient's mailbox is full"));
    let g = groups(&r.parts[1].body).unwrap();
    assert_eq!(get(&g[1], "Action"), Some("delayed"));
    assert_eq!(get(&g[1], "Status"), Some("4.2.2"));
    assert_eq!(get(&g[1], "Will-Retry-Until"), Some("Sat, 28 Nov 2026 14:03:19 +0000"));
    let text = unqp(&r.parts[0].body);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("homing will keep trying until Sat, 28 Nov 2026 14:03:19 +0000"), "{text}");
}

#[test]
fn expiry_reports_the_persistent_transient_status() {
    let mut rcpt = mailbox_full_delayed();
    let last = rcpt.explanation.take().unwrap();
    let e = Explanation::expired(&last, Duration::from_secs(5 * 86_400));
    rcpt.action = DsnAction::Failed;
    rcpt.status = e.status.clone();
    rcpt.will_retry_until = None;
    rcpt.explanation = Some(e);
    let out = build(&report(vec![rcpt], false));
    let r = parse(&out).unwrap();
    assert_eq!(r.header("Subject"), Some("Undelivered Mail Returned to Sender"));
    let g = groups(&r.parts[1].body).unwrap();
    assert_eq!(get(&g[1], "Action"), Some("failed"));
    // RFC 3463 §2: class 4 "has caused abandonment"; the remote reply stays verbatim.
    assert_eq!(get(&g[1], "Status"), Some("4.2.2"));
    assert_eq!(get(&g[1], "Diagnostic-Code"), Some("smtp; 452 4.2.2 Mailbox full"));
    let text = unqp(&r.parts[0].body);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("<carol@example.net>: NOT delivered: retries ran out (status 4.2.2)."), "{text}");
    assert!(!flat.contains("permanent"), "{text}");
}

#[test]
fn mixed_report_has_one_group_per_recipient() {
    let out = build(&report(vec![user_unknown(), mailbox_full_delayed()], false));
    let r = parse(&out).unwrap();
    assert_eq!(r.header("Subject"), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(groups(&r.parts[1].body).unwrap().len(), 3);
}

#[test]
fn hostile_values_cannot_break_the_headers() {
    let mut rcpt = user_unknown();
    rcpt.diagnostic = Some("550 5.1.1 no\r\nBcc: victim@example.net\r\n\r\nbody".into());
    rcpt.status = "not a status".into();
    let mut rep = report(vec![rcpt], false);
    rep.to = "alice@example.org\r\nBcc: x@y".into();
    rep.message_id = "id\nX-Evil: 1".into();
    let out = build(&rep);
    let r = parse(&out).unwrap();
    assert!(r.header("Bcc").is_none());
    assert!(r.header("X-Evil").is_none());
    let g = groups(&r.parts[1].body).unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(get(&g[1], "Diagnostic-Code"), Some("smtp; 550 5.1.1 no Bcc: victim@example.net body"));
    assert_eq!(get(&g[1], "Status"), Some("5.1.1"), "falls back to the explanation's status");
}

#[test]
fn boundary_never_occurs_in_content() {
    let first = build(&report(vec![user_unknown()], true));
    let r = parse(&first).unwrap();
    let ct = r.header("Content-Type").unwrap();
    let boundary = ct.split("boundary=\"").nth(1).unwrap().trim_end_matches('"');
    let mut evil = ORIGINAL.to_vec();
    evil.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    let mut rep: DsnReport<'_> = report(vec![user_unknown()], true);
    rep.original = &evil;
    let out = build(&rep);
    let r = parse(&out).unwrap();
    assert_eq!(r.parts.len(), 3);
    assert_eq!(r.parts[2].body, evil);
}
