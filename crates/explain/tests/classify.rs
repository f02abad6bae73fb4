//! Classification: every rule's examples, the "Replies users misread" rows of
//! docs/FAILURES.md, and evidence without any reply.

use std::time::Duration;

use homing_explain::rules::Example;
use homing_explain::{
    Actor, DnsEvidence, Evidence, Explanation, Reason, ReplyEvidence, Rules, Scope, Stage, explain,
};

fn from_example(ex: &Example) -> Evidence {
    let stage =
        ex.stage.as_deref().map(|s| s.parse::<Stage>().expect("example stage")).unwrap_or(Stage::Rcpt);
    let mut ev = Evidence::bare(stage, "example.com");
    ev.remote_host = Some("mx.example.com".into());
    ev.remote_ip = Some("203.0.113.25".into());
    let text = ex.text.clone().unwrap_or_default();
    if let Some(kind) = &ex.dns {
        ev.stage = Stage::Route;
        ev.dns = Some(match kind.as_str() {
            "nxdomain" => DnsEvidence::NxDomain,
            "nullmx" => DnsEvidence::NullMx,
            "nomailhost" => DnsEvidence::NoMailHost,
            "tempfail" => DnsEvidence::TempFail(text.clone()),
            "mailloop" => DnsEvidence::MailLoop(text.clone()),
            other => panic!("unknown dns kind {other}"),
        });
    } else if let Some(n) = &ex.network {
        ev.stage = Stage::Connect;
        ev.network = Some(n.clone());
    } else if let Some(t) = &ex.tls {
        ev.stage = Stage::StartTls;
        ev.tls = Some(t.clone());
    } else {
        ev.reply = Some(ReplyEvidence {
            code: ex.code.expect("reply examples need a code"),
            status: ex.status.clone(),
            text,
        });
    }
    ev
}

#[test]
fn every_rule_example_lands_on_its_rule() {
    let rules = Rules::builtin().expect("built-in rules load");
    let mut failures = Vec::new();
    let mut count = 0;
    for rule in rules.rules() {
        for ex in &rule.examples {
            count += 1;
            let ev = from_example(ex);
            let matched = rules.find(&ev).map(|r| r.id.as_str());
            let got = rules.explain(&ev);
            if matched != Some(rule.id.as_str()) || got.reason != rule.reason {
                failures.push(format!(
                    "{}: rule {:?} example {:?}\n    expected {} via {:?}, got {} via {:?}",
                    rule.file, rule.id, ex, rule.reason, rule.id, got.reason, matched
                ));
            }
            assert!(!got.cause.contains('{'), "{}: unrendered cause {}", rule.id, got.cause);
            assert!(!got.fix.contains('{'), "{}: unrendered fix {}", rule.id, got.fix);
            let status: homing_smtp::EnhancedStatus = got.status.parse().expect("status");
            let want_class = match (got.reason, got.hard) {
                (Reason::Delivered, _) => 2,
                (_, true) => 5,
                (_, false) => 4,
            };
            assert_eq!(status.class, want_class, "{}: {}", rule.id, got.status);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 90, "only {count} examples");
}

fn reply(stage: Stage, code: u16, status: Option<&str>, text: &str) -> Explanation {
    let mut ev = Evidence::bare(stage, "example.com");
    ev.remote_host = Some("mx.example.com".into());
    ev.reply = Some(ReplyEvidence { code, status: status.map(str::to_string), text: text.into() });
    explain(&ev)
}

// --- docs/FAILURES.md, "Replies users misread" ---

#[test]
fn gmail_dmarc_is_authfailure_naming_the_check() {
    let e = reply(
        Stage::Dot,
        550,
        Some("5.7.26"),
        "Unauthenticated email from example.org is not accepted due to domain's DMARC policy.",
    );
    assert_eq!(e.reason, Reason::AuthFailure);
    assert!(e.hard);
    assert!(e.cause.contains("DMARC"), "{}", e.cause);
    assert_eq!(e.status, "5.7.26");
    let spf = reply(
        Stage::Dot,
        550,
        Some("5.7.27"),
        "The sender is unauthenticated.\nAuthentication results:\nSPF [example.org] with ip: [192.0.2.10] = did not pass",
    );
    assert_eq!(spf.reason, Reason::AuthFailure);
    assert!(spf.cause.contains("SPF") && spf.cause.contains("192.0.2.10"), "{}", spf.cause);
}

#[test]
fn gmail_ptr_names_the_ip() {
    let e = reply(
        Stage::Rcpt,
        550,
        Some("5.7.25"),
        "[2001:db8::10] The IP address sending this message does not have a PTR record setup",
    );
    assert_eq!(e.reason, Reason::RequirePtr);
    assert_eq!(e.scope, Scope::SendingIp);
    assert!(e.cause.contains("2001:db8::10"), "{}", e.cause);
    assert!(e.fix.contains("IPv4"), "{}", e.fix);
}

#[test]
fn gmail_unusual_rate_is_soft_even_as_550() {
    let e = reply(
        Stage::Rcpt,
        550,
        Some("5.7.1"),
        "Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
    );
    assert_eq!(e.reason, Reason::RateLimited);
    assert!(!e.hard);
    assert!(!e.suppresses_recipient());
    let e = reply(Stage::Rcpt, 421, Some("4.7.28"), "Gmail has detected an unusual rate of unsolicited mail");
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::RateLimited, false, "4.7.28"));
}

#[test]
fn gmail_low_reputation_never_suppresses() {
    for code in [421, 550] {
        let e = reply(
            Stage::Dot,
            code,
            None,
            "This message is suspicious due to the very low reputation of the sending IP address.",
        );
        assert_eq!(e.reason, Reason::BadReputation);
        assert!(!e.suppresses_recipient());
    }
}

#[test]
fn microsoft_s3150_is_their_own_list() {
    let e = reply(
        Stage::Rcpt,
        550,
        Some("5.7.1"),
        "Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
    );
    assert_eq!(e.reason, Reason::Blocked);
    assert_eq!(e.scope, Scope::SendingIp);
    assert!(e.cause.contains("not a public"), "{}", e.cause);
    assert!(e.fix.contains("olcsupport.office.com"), "{}", e.fix);
}

#[test]
fn microsoft_708_is_sending_ip_scope() {
    let e = reply(
        Stage::Rcpt,
        550,
        Some("5.7.708"),
        "Service unavailable. Access denied, traffic not accepted from this IP.",
    );
    assert_eq!(e.scope, Scope::SendingIp);
    assert!(matches!(e.reason, Reason::Blocked | Reason::BadReputation));
}

#[test]
fn microsoft_650_is_a_soft_throttle() {
    let e = reply(
        Stage::Rcpt,
        451,
        Some("4.7.650"),
        "The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation.",
    );
    assert_eq!(e.reason, Reason::RateLimited);
    assert!(!e.hard);
}

#[test]
fn microsoft_515_wants_spf_and_dkim() {
    let e = reply(
        Stage::Dot,
        550,
        Some("5.7.515"),
        "Access denied, sending domain example.org doesn't meet the required authentication level.",
    );
    assert_eq!(e.reason, Reason::AuthFailure);
    assert!(e.fix.contains("SPF") && e.fix.contains("DKIM"));
}

#[test]
fn yahoo_tss04_is_soft_and_keeps_the_address() {
    let e = reply(
        Stage::Rcpt,
        421,
        Some("4.7.0"),
        "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints",
    );
    assert!(!e.hard);
    assert!(!e.suppresses_recipient());
    assert_eq!(e.scope, Scope::SendingIp);
    assert!(e.cause.contains("192.0.2.10"));
}

#[test]
fn spamhaus_open_resolver_is_their_problem() {
    let e = reply(
        Stage::Rcpt,
        554,
        Some("5.7.1"),
        "Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; Error: open resolver; https://www.spamhaus.org/returnc/pub/203.0.113.53",
    );
    assert_eq!(e.actor, Actor::RecipientAdmin);
    assert!(e.cause.contains("not actually listed"), "{}", e.cause);
}

#[test]
fn godaddy_rate_limit_outranks_user_unknown_code() {
    let e = reply(
        Stage::Rcpt,
        550,
        Some("5.1.1"),
        "<bob@example.com> sender has sent to too many recipients this hour. IB605",
    );
    assert_eq!(e.reason, Reason::RateLimited);
    assert!(!e.hard && !e.suppresses_recipient());
    assert_eq!(e.status, "4.7.0");
}

#[test]
fn expiry_carries_the_last_cause() {
    let last = reply(Stage::Rcpt, 452, Some("4.2.2"), "Mailbox full");
    assert_eq!(last.reason, Reason::MailboxFull);
    let e = Explanation::expired(&last, Duration::from_secs(5 * 86_400));
    assert_eq!(e.reason, Reason::Expired);
    assert!(e.hard);
    // The actual problem's code, class and all (RFC 3463 §2, §3.5).
    assert_eq!(e.status, "4.2.2");
    assert!(e.cause.contains("5 days") && e.cause.contains(&last.cause), "{}", e.cause);
    // What homing would do next is over; what the people involved must do stays.
    assert_eq!(e.fix, "The recipient must free space.");
    assert!(!e.fix.contains("homing"), "{}", e.fix);
    let twice = Explanation::expired(&e, Duration::from_secs(6 * 86_400));
    assert_eq!(twice.cause.matches("last attempt").count(), 1);
    let net = {
        let mut ev = Evidence::bare(Stage::Connect, "example.com");
        ev.network = Some("connection refused".into());
        explain(&ev)
    };
    assert_eq!(Explanation::expired(&net, Duration::from_secs(60)).status, "4.4.1");
    // A 5xx that homing retries (a blocklisting) was a transient condition to homing.
    let listed = reply(
        Stage::Rcpt,
        554,
        Some("5.7.1"),
        "Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org",
    );
    assert!(!listed.hard, "{listed:?}");
    assert_eq!(listed.status, "4.7.1");
    assert_eq!(Explanation::expired(&listed, Duration::from_secs(60)).status, "4.7.1");
    // A status that names no problem gives way to "delivery time expired".
    let vague = Explanation { status: "4.0.0".into(), ..net };
    assert_eq!(Explanation::expired(&vague, Duration::from_secs(60)).status, "4.4.7");
}

// --- seed causes ---

#[test]
fn blocklists_are_named_with_a_lookup() {
    let e = reply(
        Stage::Rcpt,
        554,
        Some("5.7.1"),
        "Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10",
    );
    assert_eq!(e.reason, Reason::Blocked);
    assert!(e.cause.contains("zen.spamhaus.org") && e.cause.contains("192.0.2.10"), "{}", e.cause);
    assert!(e.fix.contains("https://check.spamhaus.org/"), "{}", e.fix);
    let e = reply(Stage::Rcpt, 550, None, "Blocked - 192.0.2.10 listed at bl.example.net");
    assert!(e.cause.contains("bl.example.net"), "{}", e.cause);
}

#[test]
fn user_unknown_mailbox_full_and_message_too_big() {
    let e = reply(
        Stage::Rcpt,
        550,
        Some("5.1.1"),
        "<bob@example.com>: Recipient address rejected: User unknown in local recipient table",
    );
    assert_eq!((e.reason, e.hard, e.scope), (Reason::UserUnknown, true, Scope::Recipient));
    assert!(e.suppresses_recipient());
    let e = reply(Stage::Dot, 552, Some("5.2.2"), "Mailbox full");
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::MailboxFull, false, "4.2.2"));
    let e = reply(Stage::Dot, 552, Some("5.3.4"), "Message size exceeds fixed limit");
    assert_eq!((e.reason, e.hard), (Reason::MesgTooBig, true));
    let e = reply(Stage::Rcpt, 554, Some("5.7.1"), "<bob@example.com>: Relay access denied");
    assert_eq!(e.reason, Reason::NoRelaying);
}

#[test]
fn status_code_alone_decides_when_text_says_nothing() {
    let cases = [
        (550, "5.1.1", Reason::UserUnknown, true),
        (550, "5.1.2", Reason::HostUnknown, true),
        (552, "5.2.2", Reason::MailboxFull, false),
        (550, "5.2.1", Reason::Suspend, true),
        (552, "5.3.4", Reason::MesgTooBig, true),
        (550, "5.7.26", Reason::AuthFailure, true),
        (550, "5.7.27", Reason::AuthFailure, true),
        (550, "5.7.25", Reason::RequirePtr, false),
        (554, "5.4.6", Reason::NetworkError, true),
        (452, "4.5.3", Reason::RateLimited, false),
        (550, "5.7.1", Reason::PolicyViolation, true),
    ];
    for (code, status, reason, hard) in cases {
        let e = reply(Stage::Rcpt, code, Some(status), "Denied");
        assert_eq!((e.reason, e.hard), (reason, hard), "{code} {status}");
    }
}

#[test]
fn stage_and_code_alone() {
    let e = reply(Stage::Rcpt, 550, None, "Denied");
    assert_eq!(e.reason, Reason::OnHold);
    assert!(e.hard && !e.suppresses_recipient());
    assert!(e.cause.contains("without saying why"));
    let e = reply(Stage::Greeting, 554, None, "");
    assert_eq!((e.reason, e.scope, e.hard), (Reason::Blocked, Scope::SendingIp, false));
    let e = reply(Stage::Greeting, 421, None, "");
    assert_eq!((e.reason, e.hard), (Reason::TooManyConn, false));
    let e = reply(Stage::Mail, 553, None, "no");
    assert_eq!((e.reason, e.scope), (Reason::Rejected, Scope::Sender));
    let e = reply(Stage::Data, 451, None, "later");
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::Undefined, false, "4.0.0"));
    let e = reply(Stage::Dot, 250, Some("2.0.0"), "Ok");
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::Delivered, false, "2.0.0"));
}

fn dns(d: DnsEvidence) -> Explanation {
    let mut ev = Evidence::bare(Stage::Route, "exmaple.com");
    ev.dns = Some(d);
    explain(&ev)
}

#[test]
fn dns_only_evidence() {
    let e = dns(DnsEvidence::NxDomain);
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::HostUnknown, true, "5.1.2"));
    assert!(e.cause.contains("exmaple.com") && e.fix.contains("typo"));
    let e = dns(DnsEvidence::NullMx);
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::NotAccept, true, "5.1.10"));
    let e = dns(DnsEvidence::NoMailHost);
    assert_eq!((e.reason, e.hard, e.actor), (Reason::HostUnknown, true, Actor::RecipientAdmin));
    let e = dns(DnsEvidence::TempFail("SERVFAIL".into()));
    assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::NetworkError, false, "4.4.3"));
    assert!(e.cause.contains("SERVFAIL"));
    let e = dns(DnsEvidence::MailLoop("MX points here".into()));
    assert_eq!((e.hard, e.status.as_str()), (true, "5.4.6"));
}

#[test]
fn network_and_tls_evidence() {
    let mut ev = Evidence::bare(Stage::Connect, "example.com");
    ev.remote_host = Some("mx.example.com".into());
    ev.remote_ip = Some("203.0.113.25".into());
    for (text, ok) in [
        ("connection refused", "refused"),
        ("connection timed out", "timed out"),
        ("Network is unreachable", "route"),
    ] {
        ev.network = Some(text.into());
        let e = explain(&ev);
        assert_eq!((e.reason, e.hard, e.status.as_str()), (Reason::NetworkError, false, "4.4.1"));
        assert!(e.cause.contains(ok) && e.cause.contains("mx.example.com [203.0.113.25]"), "{}", e.cause);
    }
    // The network outranks a stale reply.
    ev.reply = Some(ReplyEvidence { code: 550, status: None, text: "User unknown".into() });
    assert_eq!(explain(&ev).reason, Reason::NetworkError);
    let mut ev = Evidence::bare(Stage::StartTls, "example.com");
    ev.tls = Some("STARTTLS not offered".into());
    assert_eq!(explain(&ev).reason, Reason::FailedStartTls);
    ev.tls = Some("certificate expired".into());
    assert_eq!(explain(&ev).reason, Reason::SecurityError);
}

#[test]
fn summary_is_one_line() {
    let e = reply(Stage::Rcpt, 550, Some("5.1.1"), "User unknown\nsecond line");
    let s = e.summary();
    assert!(s.starts_with("userunknown: "));
    assert!(s.contains(" Fix: "));
    assert!(!s.contains('\n') && !s.contains('\r'));
}
