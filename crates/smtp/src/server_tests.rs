use super::*;
use crate::cause::Cause;
use crate::reply::EnhancedStatus;
use crate::sasl::Mechanism;

fn session(config: ServerConfig) -> ServerSession {
    let mut s = ServerSession::new(config);
    s.greeting();
    s
}

/// Answers every check with 250 and collects actions until input or a delivery answer is
/// needed.
fn drain(s: &mut ServerSession) -> Vec<Action> {
    let mut out = Vec::new();
    loop {
        match s.next_action() {
            Action::CheckSender { .. } | Action::CheckRecipient { .. } => {
                s.respond(Reply::new(250, Some(EnhancedStatus::new(2, 0, 0)), "ok"));
            }
            a @ (Action::ReadMore | Action::Close | Action::Deliver(_)) => {
                out.push(a);
                return out;
            }
            a => out.push(a),
        }
    }
}

fn codes(actions: &[Action]) -> Vec<u16> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Reply(r) => Some(r.code),
            _ => None,
        })
        .collect()
}

#[test]
fn owed_answer_blocks_progress_and_stray_answers_are_ignored() {
    let mut s = session(ServerConfig::default());
    s.respond(Reply::new(250, None, "stray"));
    s.push_input(b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nNOOP\r\n");
    assert!(matches!(s.next_action(), Action::Reply(_)));
    assert!(matches!(s.next_action(), Action::CheckSender { .. }));
    assert_eq!(s.next_action(), Action::ReadMore);
    s.respond(Reply::new(550, None, "no"));
    assert_eq!(codes(&drain(&mut s)), [550, 250]);
    s.push_input(b"RCPT TO:<x@y.z>\r\n");
    assert_eq!(codes(&drain(&mut s)), [503], "a refused MAIL opens no transaction");
}

#[test]
fn a_421_answer_closes() {
    let mut s = session(ServerConfig::default());
    s.push_input(b"HELO c\r\nMAIL FROM:<>\r\nNOOP\r\n");
    s.next_action();
    assert!(matches!(s.next_action(), Action::CheckSender { .. }));
    s.respond(Reply::new(421, None, "bye"));
    assert_eq!(codes(&drain(&mut s)), [421]);
    assert_eq!(s.next_action(), Action::Close);
}

#[test]
fn transaction_and_wait_states() {
    let mut s = session(ServerConfig::default());
    assert_eq!(s.waiting_for(), Wait::Command);
    s.push_input(b"HELO c.example\r\nMAIL FROM:<a@b.c> BODY=8BITMIME\r\nRCPT TO:<x@y.z>\r\nDATA\r\n");
    let acts = drain(&mut s);
    assert_eq!(codes(&acts), [250, 250, 250, 354]);
    assert_eq!(s.waiting_for(), Wait::Data);
    assert_eq!(s.helo_name(), Some("c.example"));
    s.push_input(b"hi\r\n.\r\n");
    let Some(Action::Deliver(tx)) = drain(&mut s).pop() else { panic!("no delivery") };
    assert_eq!((tx.helo.as_str(), tx.esmtp), ("c.example", false));
    assert_eq!(tx.data, b"hi\r\n");
    assert_eq!(tx.recipients.len(), 1);
    assert_eq!(s.waiting_for(), Wait::Command);
    s.respond(Reply::new(250, None, "queued"));
    assert_eq!(codes(&drain(&mut s)), [250]);
}

#[test]
fn tls_drops_plaintext_and_resets() {
    let config = ServerConfig { starttls: true, ..ServerConfig::default() };
    let mut s = session(config);
    s.push_input(b"EHLO c\r\nSTARTTLS\r\n");
    let acts = drain(&mut s);
    assert_eq!(acts.iter().filter(|a| **a == Action::StartTls).count(), 1);
    assert!(!s.is_tls());
    s.push_input(b"MAIL FROM:<injected@x.y>\r\n");
    assert_eq!(s.next_action(), Action::ReadMore);
    s.tls_established();
    assert!(s.is_tls());
    assert_eq!(s.helo_name(), None);
    assert_eq!(s.buffered_bytes(), 0);
    s.push_input(b"EHLO c\r\n");
    let Some(Action::Reply(r)) = drain(&mut s).first().cloned() else { panic!() };
    assert!(!r.lines.iter().any(|l| l == "STARTTLS"));
}

#[test]
fn oversize_content_is_not_buffered() {
    let config = ServerConfig { max_message_size: 1000, ..ServerConfig::default() };
    let mut s = session(config);
    s.push_input(b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@y.z>\r\nDATA\r\n");
    drain(&mut s);
    let line = [b'x'; 98].iter().chain(b"\r\n").copied().collect::<Vec<u8>>();
    for _ in 0..100 {
        s.push_input(&line);
        assert!(s.buffered_bytes() <= 1000);
        assert_eq!(s.next_action(), Action::ReadMore);
    }
    s.push_input(b".\r\n");
    assert_eq!(codes(&drain(&mut s)), [552]);
}

#[test]
fn timeout_and_shutdown_close() {
    let mut s = session(ServerConfig::default());
    assert_eq!(s.timeout().to_string().get(..9), Some("421 4.4.2"));
    assert_eq!(s.next_action(), Action::Close);
    s.push_input(b"NOOP\r\n");
    assert_eq!(s.next_action(), Action::Close);
    let mut s = session(ServerConfig::default());
    assert_eq!(s.shutdown().code, 421);
    assert_eq!(s.next_action(), Action::Close);
}

fn submission(max_bad_commands: u32) -> ServerSession {
    let config = ServerConfig {
        implicit_tls: true,
        auth: true,
        require_auth: true,
        max_bad_commands,
        ..ServerConfig::default()
    };
    session(config)
}

#[test]
fn auth_asks_the_glue_and_records_the_login() {
    let mut s = submission(20);
    s.push_input(b"EHLO c\r\nAUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\nMAIL FROM:<tim@x.y>\r\n");
    assert!(matches!(s.next_action(), Action::Reply(_)));
    let Action::Authenticate { mechanism, login, password } = s.next_action() else { panic!() };
    assert_eq!((mechanism, login.as_str(), password.expose()), (Mechanism::Plain, "tim", "tanstaaftanstaaf"));
    assert!(!format!("{:?}", Action::Authenticate { mechanism, login, password }).contains("tanstaaf"));
    assert_eq!(s.next_action(), Action::ReadMore, "MAIL waits for the answer");
    assert_eq!(s.authenticated(), None);
    s.accept_auth("tim@example.org".into());
    assert_eq!(s.authenticated(), Some("tim@example.org"));
    s.accept_auth("stray".into());
    assert_eq!(s.authenticated(), Some("tim@example.org"), "a stray answer is ignored");
    let acts = drain(&mut s);
    assert_eq!(codes(&acts), [235, 250]);
}

#[test]
fn failed_auth_counts_as_a_bad_command() {
    let mut s = submission(2);
    s.push_input(b"EHLO c\r\n");
    drain(&mut s);
    let mut got = Vec::new();
    for _ in 0..3 {
        s.push_input(b"AUTH PLAIN AHRpbQB3cm9uZw==\r\n");
        loop {
            match s.next_action() {
                Action::Authenticate { .. } => s.respond(Cause::AuthFailed.reply()),
                Action::Reply(r) => got.push(r.code),
                _ => break,
            }
        }
    }
    assert_eq!(got, [535, 535, 421]);
    assert_eq!(s.next_action(), Action::Close);
    assert_eq!(s.authenticated(), None);
}

#[test]
fn a_temporary_failure_is_passed_on_and_auth_may_be_retried() {
    let mut s = submission(20);
    s.push_input(b"EHLO c\r\nAUTH LOGIN dGlt\r\ncHc=\r\n");
    let mut n = 0;
    loop {
        match s.next_action() {
            Action::Authenticate { login, .. } if n == 0 => {
                assert_eq!(login, "tim");
                n += 1;
                s.respond(Cause::AuthTemporaryFailure { detail: "store".into() }.reply());
            }
            Action::ReadMore => break,
            Action::Reply(_) => {}
            a => panic!("{a:?}"),
        }
    }
    s.push_input(b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
    assert!(matches!(s.next_action(), Action::Authenticate { .. }));
    s.respond(Cause::AuthSucceeded.reply());
    assert_eq!(s.authenticated(), Some("tim"));
}

#[test]
fn starttls_drops_nothing_auth_needs_and_auth_is_offered_only_in_tls() {
    let config = ServerConfig { starttls: true, auth: true, ..ServerConfig::default() };
    let mut s = session(config);
    s.push_input(b"EHLO c\r\n");
    let Some(Action::Reply(r)) = drain(&mut s).first().cloned() else { panic!() };
    assert!(!r.lines.iter().any(|l| l.starts_with("AUTH")), "{r:?}");
    s.push_input(b"AUTH LOGIN\r\nSTARTTLS\r\n");
    let acts = drain(&mut s);
    assert_eq!(codes(&acts), [538, 220]);
    s.tls_established();
    s.push_input(b"EHLO c\r\n");
    let Some(Action::Reply(r)) = drain(&mut s).first().cloned() else { panic!() };
    assert!(r.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{r:?}");
}
