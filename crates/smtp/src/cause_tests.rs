use super::*;

fn all() -> Vec<Cause> {
    let s = || "x".to_string();
    vec![
        Cause::Greeting { hostname: s() },
        Cause::EhloOk { hostname: s(), client: s(), keywords: vec!["SIZE 1".into()] },
        Cause::HeloOk { hostname: s(), client: s() },
        Cause::Closing { hostname: s() },
        Cause::SenderOk,
        Cause::RecipientOk,
        Cause::StartData,
        Cause::Queued { id: s() },
        Cause::Ok,
        Cause::VrfyCannotVerify,
        Cause::Help,
        Cause::StartTlsReady,
        Cause::SyntaxError { detail: s() },
        Cause::UnknownCommand { verb: s() },
        Cause::ParamSyntax { detail: s() },
        Cause::ParamUnsupported { param: s() },
        Cause::BadSequence { detail: s() },
        Cause::LineTooLong { limit: 1 },
        Cause::TooManyRecipients { limit: 1 },
        Cause::MessageTooBig { limit: 1 },
        Cause::BareLineEnding,
        Cause::TooManyBadCommands { limit: 1 },
        Cause::TooManyCommands { limit: 1 },
        Cause::TooMuchPipelinedInput { limit: 1 },
        Cause::Timeout,
        Cause::ShuttingDown,
        Cause::TlsNotAvailable,
        Cause::TlsTemporarilyUnavailable,
        Cause::TlsAlreadyActive,
        Cause::SpoolUnavailable { detail: s() },
        Cause::RelayDenied { domain: s() },
        Cause::MailLoop { hops: 2, limit: 1 },
        Cause::BadSender { detail: s() },
        Cause::BadRecipient { detail: s() },
        Cause::NoSuchUser { address: s() },
        Cause::Suppressed { address: s(), since: s(), by: SuppressedBy::Operator, detail: s() },
        Cause::NoValidRecipients,
        Cause::Utf8NotAllowed,
        Cause::LocalError { detail: s() },
        Cause::AuthChallenge { challenge: s() },
        Cause::AuthSucceeded,
        Cause::AuthFailed,
        Cause::AuthzidRefused,
        Cause::AuthCancelled,
        Cause::AuthMalformed { detail: s() },
        Cause::AuthLineTooLong { limit: 1 },
        Cause::AuthMechanismUnknown { name: s() },
        Cause::AuthNeedsTls,
        Cause::AuthNotAvailable,
        Cause::AlreadyAuthenticated,
        Cause::AuthInTransaction,
        Cause::AuthRequired { tls: true },
        Cause::AuthRequired { tls: false },
        Cause::AuthTemporaryFailure { detail: s() },
    ]
}

#[test]
fn every_reply_is_consistent() {
    for c in all() {
        let r = c.reply();
        let no_status = matches!(
            c,
            Cause::Greeting { .. }
                | Cause::EhloOk { .. }
                | Cause::HeloOk { .. }
                | Cause::StartData
                | Cause::AuthChallenge { .. }
        );
        match r.status {
            Some(s) => assert_eq!(u16::from(s.class), r.code / 100, "{c:?}"),
            None => assert!(no_status, "{c:?} lacks an enhanced status"),
        }
        assert!(r.lines.iter().all(|l| !l.contains(['\r', '\n'])), "{c:?}");
        if c.closes() {
            assert!(r.code == 221 || r.code == 421 || r.code == 554, "{c:?}");
        }
    }
}

#[test]
fn key_codes() {
    let code = |c: Cause| c.reply().to_string();
    assert_eq!(code(Cause::Queued { id: "AB".into() }), "250 2.0.0 Ok: queued as AB");
    assert!(code(Cause::TooManyRecipients { limit: 1000 }).starts_with("452 4.5.3 "));
    assert!(code(Cause::MessageTooBig { limit: 5 }).starts_with("552 5.3.4 "));
    assert!(code(Cause::MailLoop { hops: 51, limit: 50 }).starts_with("554 5.4.6 "));
    assert!(code(Cause::Utf8NotAllowed).starts_with("553 5.6.7 "));
    assert!(code(Cause::RelayDenied { domain: "d.example".into() }).contains("d.example"));
    assert_eq!(code(Cause::AuthSucceeded), "235 2.7.0 Authentication succeeded");
    assert!(code(Cause::AuthFailed).starts_with("535 5.7.8 "));
    assert!(code(Cause::AuthNeedsTls).starts_with("538 5.7.11 "));
    assert!(code(Cause::AuthCancelled).starts_with("501 5.0.0 "));
    assert!(code(Cause::AuthMalformed { detail: "x".into() }).starts_with("501 5.5.2 "));
    assert!(code(Cause::AuthLineTooLong { limit: 1 }).starts_with("500 5.5.6 "));
    assert!(code(Cause::AuthMechanismUnknown { name: "X".into() }).starts_with("504 5.5.4 "));
    assert!(code(Cause::AuthRequired { tls: false }).starts_with("530 5.7.0 "));
    assert_eq!(Cause::AuthChallenge { challenge: String::new() }.reply().to_wire(), b"334 \r\n");
    let unsupported = CommandError::Param(ParamError::Unsupported("FOO".into()));
    assert_eq!(Cause::from_command_error(&unsupported).reply().code, 555);
}

fn suppressed(address: &str, by: SuppressedBy, detail: &str) -> Reply {
    Cause::Suppressed { address: address.into(), since: "2026-11-20".into(), by, detail: detail.into() }
        .reply()
}

#[test]
fn suppressed_status_follows_how_the_address_got_listed() {
    let bounce = |s: &str| SuppressedBy::Bounce { status: Some(s.parse().unwrap()) };
    let code = |by| suppressed("bob@rx.test", by, "x").to_string();
    assert!(code(bounce("5.1.1")).starts_with("550 5.1.1 "));
    assert!(code(bounce("5.1.10")).starts_with("550 5.1.10 "));
    assert!(code(bounce("5.2.1")).starts_with("550 5.2.1 "));
    // A dead-address reason with an unrelated status, and every policy listing: 5.7.1.
    assert!(code(bounce("5.0.0")).starts_with("550 5.7.1 "));
    assert!(code(SuppressedBy::Bounce { status: None }).starts_with("550 5.7.1 "));
    assert!(code(SuppressedBy::Complaint).starts_with("550 5.7.1 "));
    assert!(code(SuppressedBy::Operator).starts_with("550 5.7.1 "));
}

#[test]
fn suppressed_says_when_why_and_how_to_lift_it() {
    let r = suppressed(
        "bob@rx.test",
        SuppressedBy::Bounce { status: Some(EnhancedStatus::new(5, 1, 1)) },
        "userunknown: mx.rx.test said the address does not exist",
    );
    assert_eq!(
        r.to_string(),
        "550 5.1.1 <bob@rx.test> is on this server's suppression list: it bounced on 2026-11-20 \
         (userunknown: mx.rx.test said the address does not exist); remove it with \
         `homing suppress remove bob@rx.test` if the address works again"
    );
}

#[test]
fn suppressed_fits_one_line_of_512_octets() {
    let local = "l".repeat(64);
    let domain = format!("{}.example", "d".repeat(180));
    let address = format!("{local}@{domain}");
    for detail in ["", "short", &"x\r\n\u{e9}".repeat(300)] {
        let wire = suppressed(&address, SuppressedBy::Operator, detail).to_wire();
        assert!(wire.len() <= 512, "{} octets", wire.len());
        assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(wire.is_ascii());
        let text = String::from_utf8_lossy(&wire);
        assert!(text.contains(&address), "{text}");
        assert!(text.contains("homing suppress remove"), "{text}");
    }
    let wire = suppressed("bob@rx.test", SuppressedBy::Complaint, &"why ".repeat(200)).to_wire();
    assert!(wire.len() <= 512 && wire.ends_with(b"works again\r\n"), "{}", String::from_utf8_lossy(&wire));
}
