use super::*;
use crate::address::{AddressOptions, parse_path};
use crate::data::{DataDecoder, DataStatus};
use crate::reply_parser::ReplyParser;

fn r(s: &str) -> Reply {
    let mut p = ReplyParser::new();
    match p.feed(format!("{s}\r\n").as_bytes()) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("{s}: {other:?}"),
    }
}

fn rcpts(n: usize) -> Vec<(Address, RcptParams)> {
    (0..n)
        .map(|i| {
            let a = parse_path(&format!("<u{i}@d.example>"), AddressOptions::default());
            (a.unwrap(), RcptParams::default())
        })
        .collect()
}

fn tx(n: usize, pipelining: bool) -> ClientTransaction {
    let from = ReversePath::Address(parse_path("<s@x.example>", AddressOptions::default()).unwrap());
    ClientTransaction::new(from, MailParams { size: Some(10), ..Default::default() }, rcpts(n), pipelining)
}

fn outcome(step: Result<Step, ClientError>) -> TransactionOutcome {
    match step {
        Ok(Step::Done(o)) => o,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn capabilities_from_ehlo() {
    let reply = r(
        "250-mx.example hi\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8bitmime\r\n250-SMTPUTF8\r\n250-DSN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN login\r\n250 AUTH=PLAIN",
    );
    let c = Capabilities::from_ehlo(&reply);
    assert!(c.pipelining && c.starttls && c.eight_bit_mime && c.smtputf8 && c.dsn);
    assert!(c.enhanced_status_codes);
    assert_eq!(c.size, Some(1000));
    assert_eq!(c.auth, ["PLAIN", "LOGIN"]);
    let c = Capabilities::from_ehlo(&r("250-x\r\n250 SIZE"));
    assert_eq!((c.size, c.pipelining), (Some(0), false));
    let c = Capabilities::from_ehlo(&r("250 PIPELINING"));
    assert!(!c.pipelining, "the first line is the greeting");
}

#[test]
fn dot_stuffing() {
    assert_eq!(dot_stuff(b""), b".\r\n");
    assert_eq!(dot_stuff(b"a"), b"a\r\n.\r\n");
    assert_eq!(dot_stuff(b".a\r\n..\r\n.\r\nb\r\n"), b"..a\r\n...\r\n..\r\nb\r\n.\r\n");
    assert_eq!(dot_stuff(b"x\n.y\rz"), b"x\r\n..y\r\nz\r\n.\r\n");
}

#[test]
fn dot_stuff_round_trips_through_the_server_decoder() {
    let bodies: [&[u8]; 5] = [b"", b"hello\r\n", b".\r\n", b"a\r\n.\r\n..b\r\n.", b"\r\n\r\n.\r\n"];
    for body in bodies {
        let mut d = DataDecoder::new(1000);
        let wire = dot_stuff(body);
        assert_eq!(d.feed(&wire), wire.len());
        assert_eq!(d.status(), DataStatus::Done);
        let mut want = body.to_vec();
        if !want.is_empty() && !want.ends_with(b"\r\n") {
            want.extend_from_slice(b"\r\n");
        }
        assert_eq!(d.into_data(), want, "{body:?}");
    }
}

#[test]
fn pipelined_happy_path() {
    let mut t = tx(2, true);
    assert_eq!(
        t.commands(),
        b"MAIL FROM:<s@x.example> SIZE=10\r\nRCPT TO:<u0@d.example>\r\nRCPT TO:<u1@d.example>\r\nDATA\r\n"
    );
    assert_eq!(t.commands(), b"");
    assert_eq!(t.on_reply(r("250 2.1.0 ok")), Ok(Step::Wait));
    assert_eq!(t.on_reply(r("250 2.1.5 ok")), Ok(Step::Wait));
    assert_eq!(t.on_reply(r("550 5.1.1 no")), Ok(Step::Wait));
    assert_eq!(t.on_reply(r("354 go")), Ok(Step::SendBody));
    let o = outcome(t.on_reply(r("250 2.0.0 queued")));
    assert!(!o.needs_rset);
    assert_eq!(o.recipient_result(0).map(|r| r.code), Some(250));
    assert!(o.delivered(0));
    assert_eq!(o.recipient_result(1).map(|r| r.code), Some(550));
    assert!(!o.delivered(1));
    assert_eq!(o.recipient_result(2), None);
    assert!(matches!(t.on_reply(r("250 extra")), Err(ClientError::UnexpectedReply(_))));
}

#[test]
fn pipelined_all_rejected_data_refused() {
    let mut t = tx(1, true);
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    t.on_reply(r("550 5.1.1 no")).unwrap();
    let o = outcome(t.on_reply(r("554 5.5.1 no valid recipients")));
    assert!(o.needs_rset);
    assert_eq!(o.recipient_result(0).map(|r| r.code), Some(550));
}

#[test]
fn pipelined_all_rejected_but_354_sends_empty_body() {
    let mut t = tx(1, true);
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    t.on_reply(r("450 4.2.0 later")).unwrap();
    assert_eq!(t.on_reply(r("354 go")), Ok(Step::Send));
    assert_eq!(t.commands(), b".\r\n");
    let o = outcome(t.on_reply(r("250 2.0.0 empty queued")));
    assert_eq!(o.recipient_result(0).map(|r| r.code), Some(450));
    assert!(!o.delivered(0));
    assert!(!o.needs_rset);
}

#[test]
fn pipelined_mail_rejected() {
    let mut t = tx(2, true);
    t.commands();
    t.on_reply(r("550 5.7.1 go away")).unwrap();
    t.on_reply(r("503 5.5.1 no mail")).unwrap();
    t.on_reply(r("503 5.5.1 no mail")).unwrap();
    let o = outcome(t.on_reply(r("503 5.5.1 no mail")));
    assert!(!o.needs_rset);
    for i in 0..2 {
        assert_eq!(o.recipient_result(i).map(|r| r.code), Some(550));
    }
}

#[test]
fn lockstep_happy_path() {
    let mut t = tx(2, false);
    assert_eq!(t.commands(), b"MAIL FROM:<s@x.example> SIZE=10\r\n");
    assert_eq!(t.on_reply(r("250 ok")), Ok(Step::Send));
    assert_eq!(t.commands(), b"RCPT TO:<u0@d.example>\r\n");
    assert_eq!(t.on_reply(r("451 4.3.0 later")), Ok(Step::Send));
    assert_eq!(t.commands(), b"RCPT TO:<u1@d.example>\r\n");
    assert_eq!(t.on_reply(r("250 ok")), Ok(Step::Send));
    assert_eq!(t.commands(), b"DATA\r\n");
    assert_eq!(t.on_reply(r("354 go")), Ok(Step::SendBody));
    let o = outcome(t.on_reply(r("554 5.7.0 spam")));
    assert_eq!(o.recipient_result(0).map(|r| r.code), Some(451));
    assert_eq!(o.recipient_result(1).map(|r| r.code), Some(554));
    assert!(!o.delivered(1));
}

#[test]
fn lockstep_failures() {
    let mut t = tx(2, false);
    t.commands();
    let o = outcome(t.on_reply(r("421 4.3.2 bye")));
    assert_eq!(o.rcpt, vec![None, None]);
    assert_eq!((o.needs_rset, o.recipient_result(1).map(|r| r.code)), (false, Some(421)));

    let mut t = tx(2, false);
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    t.commands();
    t.on_reply(r("550 no")).unwrap();
    t.commands();
    let o = outcome(t.on_reply(r("550 no")));
    assert!(o.needs_rset);
    assert_eq!(o.data, None);

    let mut t = tx(1, false);
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    assert_eq!(t.commands(), b"DATA\r\n");
    let o = outcome(t.on_reply(r("451 4.3.0 try later")));
    assert!(o.needs_rset);
    assert_eq!(o.recipient_result(0).map(|r| r.code), Some(451));

    let mut t = tx(1, false);
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    t.commands();
    t.on_reply(r("250 ok")).unwrap();
    t.commands();
    assert!(matches!(t.on_reply(r("250 what")), Err(ClientError::BadDataReply(_))));
}
