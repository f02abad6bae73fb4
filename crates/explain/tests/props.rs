//! Property tests: no input makes `explain`, `dsn::build` or the bounce reader panic; every
//! report parses back into three parts with one delivery-status group per recipient; every
//! finding read from a bounce names an address (or nothing) and a well-formed status.

mod mime_shapes;
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homing_explain::bounce::{self, Kind};
use homing_explain::dsn::{DsnAction, DsnRecipient, DsnReport, build};
use homing_explain::{DnsEvidence, Evidence, Explanation, ReplyEvidence, Stage, explain};
use proptest::prelude::*;
use support::{get, groups, parse};

fn stage() -> impl Strategy<Value = Stage> {
    proptest::sample::select(Stage::ALL.to_vec())
}

fn reply() -> impl Strategy<Value = ReplyEvidence> {
    (
        prop_oneof![0u16..1000, 200u16..600, Just(u16::MAX)],
        proptest::option::of(prop_oneof!["[245]\\.[0-9]{1,3}\\.[0-9]{1,3}", ".{0,12}",]),
        prop_oneof![
            ".{0,300}",
            "(user unknown|spam|blocked using [a-z.]{0,20}|quota|\\[[0-9.:a-f]{0,40}\\]|[{}]|\r|\n| ){0,12}",
        ],
    )
        .prop_map(|(code, status, text)| ReplyEvidence { code, status, text })
}

fn evidence() -> impl Strategy<Value = Evidence> {
    (
        stage(),
        proptest::option::of(reply()),
        proptest::option::of(prop_oneof![
            Just(DnsEvidence::NxDomain),
            Just(DnsEvidence::NullMx),
            Just(DnsEvidence::NoMailHost),
            ".{0,40}".prop_map(DnsEvidence::TempFail),
            ".{0,40}".prop_map(DnsEvidence::MailLoop),
        ]),
        proptest::option::of(".{0,60}"),
        proptest::option::of(".{0,60}"),
        ".{0,40}",
        proptest::option::of(".{0,40}"),
        proptest::option::of(".{0,40}"),
    )
        .prop_map(|(stage, reply, dns, network, tls, domain, remote_host, remote_ip)| Evidence {
            stage,
            reply,
            dns,
            network,
            tls,
            domain,
            remote_host,
            remote_ip,
        })
}

fn time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..8_000_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        Just(UNIX_EPOCH - Duration::from_secs(1)),
    ]
}

fn action() -> impl Strategy<Value = DsnAction> {
    proptest::sample::select(vec![
        DsnAction::Failed,
        DsnAction::Delayed,
        DsnAction::Delivered,
        DsnAction::Relayed,
        DsnAction::Expanded,
    ])
}

fn recipient() -> impl Strategy<Value = DsnRecipient> {
    (
        ".{0,80}",
        proptest::option::of(".{0,60}"),
        action(),
        ".{0,10}",
        proptest::option::of(".{0,60}"),
        proptest::option::of(prop_oneof![".{0,400}", "[a-z\r\n ]{0,200}", "[^ ]{900,1200}"]),
        proptest::option::of(time()),
        proptest::option::of(time()),
        proptest::option::of(evidence()),
    )
        .prop_map(
            |(
                final_recipient,
                original_recipient,
                action,
                status,
                remote_mta,
                diagnostic,
                last,
                until,
                ev,
            )| {
                DsnRecipient {
                    final_recipient,
                    original_recipient,
                    action,
                    status,
                    remote_mta,
                    diagnostic,
                    last_attempt: last,
                    will_retry_until: until,
                    explanation: ev.map(|e| explain(&e)),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn explain_never_panics(ev in evidence(), days in 0u64..40) {
        let e = explain(&ev);
        let s = e.summary();
        prop_assert!(!s.contains('\n') && !s.contains('\r'));
        let status: homing_smtp::EnhancedStatus = e.status.parse().map_err(|err| TestCaseError::fail(format!("{err}")))?;
        prop_assert!(matches!(status.class, 2 | 4 | 5));
        let x = Explanation::expired(&e, Duration::from_secs(days * 86_400));
        // Expiry reports the last status (RFC 3463 §3.5), or 4.4.7 when it says nothing.
        prop_assert!(x.hard);
        if status.class == 2 || (status.subject, status.detail) == (0, 0) {
            prop_assert_eq!(&x.status, "4.4.7");
        } else {
            prop_assert_eq!(&x.status, &e.status);
        }
    }

    #[test]
    fn build_always_yields_a_parseable_report(
        reporting_mta in ".{0,60}",
        postmaster in ".{0,60}",
        to in ".{0,60}",
        message_id in ".{0,60}",
        envid in proptest::option::of(".{0,40}"),
        queue_id in ".{0,30}",
        received_from_mta in proptest::option::of(".{0,60}"),
        return_full in any::<bool>(),
        original in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            "(Subject: [^\r\n]{0,80}\r?\n|\r?\n|--=_homing_[0-9a-f]{16}_0|body\r|x{0,1100}){0,10}".prop_map(String::into_bytes),
        ],
        date in time(),
        arrival in time(),
        recipients in proptest::collection::vec(recipient(), 0..4),
    ) {
        let n = recipients.len();
        let report = DsnReport {
            reporting_mta, postmaster, to, date, message_id, envid, queue_id,
            arrival_date: arrival, received_from_mta, return_full,
            original: &original, recipients,
        };
        let out = build(&report);
        let r = parse(&out).map_err(TestCaseError::fail)?;
        prop_assert_eq!(r.parts.len(), 3);
        let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
        for line in out[..head_end].split(|&b| b == b'\n') {
            prop_assert!(line.len() <= 998);
        }
        for line in r.parts[1].body.split(|&b| b == b'\n') {
            prop_assert!(line.len() <= 998);
        }
        prop_assert!(r.parts[1].body.is_ascii());
        let g = groups(&r.parts[1].body).map_err(TestCaseError::fail)?;
        prop_assert_eq!(g.len(), n + 1);
        prop_assert!(get(&g[0], "Reporting-MTA").is_some_and(|v| v.starts_with("dns;")));
        for group in &g[1..] {
            prop_assert!(get(group, "Final-Recipient").is_some());
            prop_assert!(get(group, "Action").is_some());
            let status = get(group, "Status").unwrap_or("");
            prop_assert!(status.parse::<homing_smtp::EnhancedStatus>().is_ok(), "{}", status);
        }
        if return_full {
            // RFC 2046: the original travels unchanged apart from line endings.
            let normal = String::from_utf8_lossy(&original).replace("\r\n", "\n").replace('\r', "\n");
            let got = String::from_utf8_lossy(&r.parts[2].body).replace("\r\n", "\n");
            prop_assert_eq!(got, normal);
        }
    }
}

/// Reads `raw` as a bounce and checks what every finding promises.
fn read_and_check(raw: &[u8]) -> Result<(), TestCaseError> {
    let report = bounce::read(raw);
    let findings = bounce::explain_report(&report);
    prop_assert_eq!(findings.len(), report.failures.len());
    if report.kind == Kind::NotABounce {
        prop_assert!(findings.is_empty());
    }
    for f in &findings {
        prop_assert!(f.recipient.is_empty() || f.recipient.contains('@'), "recipient {:?}", f.recipient);
        prop_assert!(f.status.is_empty() || is_status(&f.status), "status {:?}", f.status);
        prop_assert!(!f.diagnostic.contains(['\n', '\r']), "diagnostic {:?}", f.diagnostic);
    }
    Ok(())
}

/// `^[245]\.\d{1,3}\.\d{1,3}$`
fn is_status(s: &str) -> bool {
    let mut it = s.split('.');
    let (Some(class), Some(subject), Some(detail), None) = (it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    let number = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit());
    matches!(class, "2" | "4" | "5") && number(subject) && number(detail)
}

#[test]
fn status_shape() {
    assert!(is_status("5.1.1") && is_status("4.0.947") && is_status("2.123.0"));
    assert!(!is_status("5.1") && !is_status("3.1.1") && !is_status("5.1.1234") && !is_status("5..1"));
}

// 256 cases each unless PROPTEST_CASES says otherwise (to hunt longer).
proptest! {
    #[test]
    fn bounce_reader_survives_arbitrary_bytes(raw in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4000),
        "(\r|\n|\r\n|[A-Za-z-]{1,12}: |--|=\\?|\\?=|@|<|>|;|\"|[ \t]|[^\r\n]{0,30}){0,200}".prop_map(String::into_bytes),
    ]) {
        read_and_check(&raw)?;
    }

    #[test]
    fn bounce_reader_survives_mime_shaped_input(message in mime_shapes::message()) {
        read_and_check(&message.0)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ses_recipients_are_addresses(
        address in mime_shapes::address(),
        kind in prop::sample::select(vec!["Bounce", "Complaint"]),
    ) {
        let event = serde_json::json!({
            "notificationType": kind,
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1"}]},
            "complaint": {"complainedRecipients": [{"emailAddress": address}]},
        });
        let raw = format!("From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n\n{event}\n");
        read_and_check(raw.as_bytes())?;
    }
}
