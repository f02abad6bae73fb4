//! Reading bounces: one hand-written notice (`.example` names only) for each way servers
//! word a failure that the reader must tell apart, checked through `bounce::read` and
//! `bounce::explain_report` as `homing why` uses them.

use homing_explain::Reason;
use homing_explain::bounce::{self, Finding, Kind};

/// The findings of one raw message, which must be a report of `kind`.
fn findings(raw: &str, kind: Kind) -> Vec<Finding> {
    let report = bounce::read(raw.as_bytes());
    assert_eq!(report.kind, kind, "{report:#?}");
    bounce::explain_report(&report)
}

/// The one finding of a bounce.
fn only(raw: &str) -> Finding {
    let mut f = findings(raw, Kind::Bounce);
    assert_eq!(f.len(), 1, "{f:#?}");
    f.remove(0)
}

const DSN_HEAD: &str = "From: MAILER-DAEMON@mx.sender.example\r\n\
    To: alice@sender.example\r\n\
    Subject: Undelivered Mail Returned to Sender\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n";

/// An RFC 3464 report with `notice` as its human part and `fields` as the recipient's.
fn dsn(notice: &str, fields: &str) -> String {
    format!(
        "{DSN_HEAD}--b\r\nContent-Type: text/plain\r\n\r\n{notice}\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.sender.example\r\n\r\n{fields}\r\n--b--\r\n"
    )
}

#[test]
fn words_without_a_known_cause_are_on_hold_and_no_words_are_undefined() {
    let held = only(
        "From: postmaster@relay.example\r\nTo: alice@sender.example\r\n\
         Subject: Undeliverable: bob@rcpt.example\r\n\r\n\
         Your message did not reach the following recipient: bob@rcpt.example\r\n",
    );
    assert_eq!(held.reason, Reason::OnHold, "{held:#?}");
    assert!(held.cause.contains("name no cause"), "{}", held.cause);

    let silent = dsn(
        "The mail system\r\n\r\n--- Delivery report unavailable ---",
        "Final-Recipient: rfc822; bob@rcpt.example\r\nAction: failed\r\nStatus: 5.0.0",
    );
    assert_eq!(only(&silent).reason, Reason::Undefined);
}

#[test]
fn a_summary_of_the_original_is_not_a_failed_recipient() {
    // Exchange's shape: the original's To: and Subject: first, the failure after.
    let f = only(
        "From: System Administrator <postmaster@corp.example>\r\nTo: alice@sender.example\r\n\
         Subject: Undeliverable: Report\r\n\r\n\
         Your message\r\n\r\n  To:      carol@corp.example\r\n  Subject: Report\r\n\
         \x20 Sent:    Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n\
         did not reach the following recipient(s):\r\n\r\n\
         bob@corp.example on Mon, 2 Nov 2026 10:00:05 +0000\r\n\
         \x20   The recipient name is not recognized\r\n",
    );
    assert_eq!(f.recipient, "bob@corp.example");
    assert_eq!(f.reason, Reason::UserUnknown);
    assert!(!f.diagnostic.contains("Subject"), "{}", f.diagnostic);
}

#[test]
fn a_local_program_failure_is_a_mailer_error_unless_its_words_say_more() {
    let pipe = dsn(
        "<bob@rcpt.example>: temporary failure",
        "Final-Recipient: rfc822; bob@rcpt.example\r\nAction: failed\r\nStatus: 4.3.0\r\n\
         Diagnostic-Code: x-unix; temporary failure",
    );
    assert_eq!(only(&pipe).reason, Reason::MailerError);

    let quota = dsn(
        "<bob@rcpt.example>: quota",
        "Final-Recipient: rfc822; bob@rcpt.example\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         Diagnostic-Code: x-unix; Quota exceeded message delivery failed",
    );
    assert_eq!(only(&quota).reason, Reason::MailboxFull);
}

#[test]
fn retries_ended_by_an_unreachable_or_unresolvable_host_are_network_errors() {
    let delayed = dsn(
        "Your message could not be delivered for more than 4 hour(s).\r\n\
         <bob@rcpt.example>: connect to mx.rcpt.example[192.0.2.7]:25: No route to host",
        "Final-Recipient: rfc822; bob@rcpt.example\r\nAction: delayed\r\nStatus: 4.4.1\r\n\
         Diagnostic-Code: X-Postfix; connect to mx.rcpt.example[192.0.2.7]:25: No route to host",
    );
    let f = only(&delayed);
    assert_eq!(f.reason, Reason::NetworkError, "{f:#?}");
    assert!(!f.hard);

    let timed_out = dsn(
        "Your message could not be delivered for more than 4 hour(s).\r\n\
         <bob@rcpt.example>: connect to mx.rcpt.example[192.0.2.7]:25: Connection timed out",
        "Final-Recipient: rfc822; bob@rcpt.example\r\nAction: failed\r\nStatus: 4.4.7\r\n\
         Diagnostic-Code: X-Postfix; connect to mx.rcpt.example[192.0.2.7]:25: Connection timed out",
    );
    assert_eq!(only(&timed_out).reason, Reason::Expired);
}

#[test]
fn a_421_about_the_connection_is_not_a_busy_server() {
    let f = only(
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.sender.example>\r\nTo: alice@sender.example\r\n\
         Subject: Returned mail: Deferred\r\n\r\n\
         \x20  ----- Transcript of session follows -----\r\n\
         421 rcpt.example (smtp)... Deferred: Connection timed out during user open with rcpt.example\r\n\
         <bob@rcpt.example>... Message could not be delivered for 5 days\r\n",
    );
    assert_eq!(f.reason, Reason::Expired, "{f:#?}");
}

#[test]
fn a_forwarded_bounce_is_read_without_the_quoted_original() {
    let f = only(
        "From: alice@sender.example\r\nTo: help@sender.example\r\n\
         Subject: Fwd: Returned mail: see transcript for details\r\n\r\n\
         Begin forwarded message:\r\n\r\n\
         > Subject: Returned mail: see transcript for details\r\n>\r\n\
         >    ----- The following addresses had permanent fatal errors -----\r\n\
         > <bob@rcpt.example>\r\n\
         >     (reason: 550 5.1.1 <bob@rcpt.example>... User unknown)\r\n>\r\n\
         > Return-Path: <alice@sender.example>\r\n\
         > X-Virus-Scanned: ClamAV on mx.sender.example\r\n\
         > X-Virus-Status: Clean\r\n",
    );
    assert_eq!(f.reason, Reason::UserUnknown, "{f:#?}");
}

#[test]
fn an_unsubscribe_request_is_feedback() {
    let f = findings(
        "From: bob@rcpt.example\r\nTo: opt-out-17@lists.sender.example\r\nSubject: unsubscribe\r\n\
         Auto-Submitted: auto-replied\r\nX-Apple-Unsubscribe: true\r\n\r\n\
         Mail sent this email to unsubscribe from the message \"News\".\r\n",
        Kind::Feedback,
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].recipient, "bob@rcpt.example");
    assert_eq!(f[0].reason, Reason::Feedback);
    assert_eq!(f[0].feedback_type.as_deref(), Some("unsubscribe"));
    assert!(f[0].fix.contains("Remove the recipient"), "{}", f[0].fix);
}

#[test]
fn mailing_list_manager_notices_name_the_list() {
    let head = "From: ml-admin@lists.example\r\nTo: alice@sender.example\r\n\
                X-MLServer: fml [fml 4.0.3 release (20011202/4.0.3)]\r\n";
    let member = findings(
        &format!(
            "{head}Subject: You alice@sender.example are not member (talk ML)\r\n\r\n\
             You are not a member of this mailing list <talk@lists.example>.\r\n"
        ),
        Kind::Bounce,
    );
    assert_eq!(member[0].recipient, "talk@lists.example");
    assert_eq!(member[0].reason, Reason::Rejected);

    let looped = findings(
        &format!(
            "{head}Subject: Loop Alert: Duplicated Message-ID (talk ML)\r\n\r\n\
             Duplicated Message-ID in <talk@lists.example>.\r\n"
        ),
        Kind::Bounce,
    );
    assert_eq!(looped[0].reason, Reason::SystemError);
}

#[test]
fn filter_marked_notices_are_filtered() {
    let f = only(
        "From: Postmaster@mobile.example\r\nTo: alice@sender.example\r\n\
         Subject: Mail System Error - Returned Mail\r\nX-SPASIGN: NG\r\n\r\n\
         <bob@mobile.example>\r\n\
         Each of the following recipients was rejected by a remote mail server.\r\n",
    );
    assert_eq!(f.reason, Reason::Filtered, "{f:#?}");
}
