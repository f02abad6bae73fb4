//! Property tests: the parsers and the server session never panic on any input, round trips
//! hold, and the server's buffers stay within its limits.

use homing_smtp::address::{AddressOptions, parse_path};
use homing_smtp::data::{DataDecoder, DataStatus};
use homing_smtp::params::{xtext_decode, xtext_encode};
use homing_smtp::sasl::{self, MAX_FIELD, SaslError};
use homing_smtp::{
    Action, CommandOptions, Reply, ReplyParser, ServerConfig, ServerSession, dot_stuff, parse_command,
};
use proptest::prelude::*;

/// Bytes that look like SMTP often enough to reach deep states.
fn smtp_chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let piece = prop_oneof![
        Just(b"EHLO c.example\r\n".to_vec()),
        Just(b"HELO c\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b.example> SIZE=100\r\n".to_vec()),
        Just(b"MAIL FROM:<>\r\n".to_vec()),
        Just(b"RCPT TO:<x@y.example> NOTIFY=NEVER\r\n".to_vec()),
        Just(b"RCPT TO:<unknown@y.example>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"Received: x\r\n".to_vec()),
        Just(b"..\r\n".to_vec()),
        Just(b"STARTTLS\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n".to_vec()),
        Just(b"AUTH PLAIN\r\n".to_vec()),
        Just(b"AUTH LOGIN dGlt\r\n".to_vec()),
        Just(b"AUTH LOGIN\r\n".to_vec()),
        Just(b"dGFuc3RhYWY=\r\n".to_vec()),
        Just(b"*\r\n".to_vec()),
        Just(b"AUTH PLAIN =\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..80),
        "[ -~]{0,120}".prop_map(|s| s.into_bytes()),
    ];
    proptest::collection::vec(piece, 0..40).prop_flat_map(|pieces| {
        let all: Vec<u8> = pieces.concat();
        let len = all.len();
        (Just(all), proptest::collection::vec(0..=len, 0..10)).prop_map(|(all, mut cuts)| {
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(all[at..c].to_vec());
                at = c;
            }
            chunks.push(all[at..].to_vec());
            chunks
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_command_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300), utf8: bool) {
        let _ = parse_command(&line, CommandOptions { utf8 });
    }

    #[test]
    fn parse_command_on_smtp_like_text(s in "(MAIL FROM:|RCPT TO:|EHLO |VRFY )[ -~]{0,100}") {
        let _ = parse_command(s.as_bytes(), CommandOptions { utf8: true });
    }

    #[test]
    fn parse_path_never_panics_and_display_round_trips(s in "<?[a-zA-Z0-9.\"\\\\@\\[\\]:,ä -]{0,70}>?", utf8: bool) {
        if let Ok(a) = parse_path(&s, AddressOptions { utf8 }) {
            let again = parse_path(&a.to_path(), AddressOptions { utf8 });
            prop_assert_eq!(again, Ok(a));
        }
    }

    #[test]
    fn parse_path_arbitrary(s in "\\PC{0,300}") {
        let _ = parse_path(&s, AddressOptions { utf8: true });
    }

    #[test]
    fn reply_parser_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..10)) {
        let mut p = ReplyParser::new();
        for c in chunks {
            if p.feed(&c).is_err() {
                break;
            }
        }
    }

    #[test]
    fn replies_round_trip(class in 2u16..6, subject in 0u16..6, detail in 0u16..10, lines in proptest::collection::vec("[ -~]{0,60}", 1..5)) {
        let lines: Vec<String> = lines.into_iter().map(|l| l.trim().to_string()).collect();
        let r = Reply::multiline(class * 100 + subject * 10 + detail, None, lines);
        let mut p = ReplyParser::new();
        let got = p.feed(&r.to_wire()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].to_wire(), r.to_wire());
    }

    #[test]
    fn dot_stuff_round_trips(body in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300)) {
        let wire = dot_stuff(&body);
        let mut d = DataDecoder::new(10_000);
        prop_assert_eq!(d.feed(&wire), wire.len());
        prop_assert_eq!(d.status(), DataStatus::Done);
        let data = d.into_data();
        prop_assert!(data.is_empty() || data.ends_with(b"\r\n"));
        prop_assert_eq!(dot_stuff(&data), wire);
    }

    #[test]
    fn xtext_round_trips(s in "\\PC{0,50}") {
        prop_assert_eq!(xtext_decode(&xtext_encode(&s)), Ok(s));
    }

    #[test]
    fn server_never_panics_and_stays_bounded(
        chunks in smtp_chunks(),
        starttls: bool,
        accept: bool,
        auth: bool,
        implicit_tls: bool,
    ) {
        let config = ServerConfig {
            max_line_length: 64,
            max_message_size: 200,
            max_recipients: 3,
            max_bad_commands: 5,
            max_commands: 50,
            max_received_headers: 2,
            max_buffered_input: 512,
            starttls,
            auth,
            implicit_tls,
            require_auth: auth,
            ..ServerConfig::default()
        };
        let bound = config.max_buffered_input + config.max_message_size as usize;
        let mut s = ServerSession::new(config);
        s.greeting();
        let mut closed = false;
        for c in chunks {
            if closed {
                break;
            }
            s.push_input(&c);
            prop_assert!(s.buffered_bytes() <= bound, "{} > {}", s.buffered_bytes(), bound);
            for _ in 0..10_000 {
                let reply = Reply::new(if accept { 250 } else { 550 }, None, "policy");
                match s.next_action() {
                    Action::ReadMore => break,
                    Action::Close => {
                        closed = true;
                        break;
                    }
                    Action::CheckSender { .. } | Action::CheckRecipient { .. } | Action::Deliver(_) => {
                        s.respond(reply)
                    }
                    Action::Authenticate { login, .. } => {
                        prop_assert!(s.is_tls(), "credentials were read outside TLS");
                        prop_assert!(!login.is_empty() && login.len() <= MAX_FIELD);
                        s.respond(reply);
                    }
                    Action::StartTls => s.tls_established(),
                    Action::Reply(r) => prop_assert!((200..600).contains(&r.code)),
                }
                prop_assert!(s.buffered_bytes() <= bound);
            }
        }
    }

    #[test]
    fn sasl_base64_never_panics_and_round_trips(line in "[A-Za-z0-9+/=*. -]{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(decoded) = sasl::decode_base64(&line) {
            prop_assert_eq!(sasl::encode_base64(&decoded), line);
        }
        prop_assert_eq!(sasl::decode_base64(&sasl::encode_base64(&bytes)), Ok(bytes));
    }

    #[test]
    fn sasl_plain_never_panics(message in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..1200)) {
        if let Ok(p) = sasl::parse_plain(&message) {
            prop_assert!(!p.login.is_empty() && p.login.len() <= MAX_FIELD);
            prop_assert!(!p.password.expose().is_empty() && p.password.expose().len() <= MAX_FIELD);
        }
        let _ = sasl::parse_login_user(&message);
        let _ = sasl::parse_login_password(&message);
    }

    #[test]
    fn sasl_plain_round_trips(authzid in "[^\\x00\r\n]{0,40}", login in "[^\\x00\r\n]{1,40}", password in "[^\\x00\r\n]{1,80}") {
        let p = sasl::parse_plain(&sasl::encode_plain(&authzid, &login, &password))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(p.authzid, Some(authzid).filter(|a| !a.is_empty()));
        prop_assert_eq!(p.login, login);
        prop_assert_eq!(p.password.expose(), password.as_str());
    }

    #[test]
    fn sasl_oversized_fields_are_refused(n in MAX_FIELD + 1..MAX_FIELD * 3) {
        let m = sasl::encode_plain("", "tim", &"p".repeat(n));
        prop_assert_eq!(sasl::parse_plain(&m).map(|_| ()), Err(SaslError::TooLong(sasl::Field::Password)));
    }
}
