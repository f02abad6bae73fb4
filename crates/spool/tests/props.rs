//! Property tests: the readers never panic on any bytes, and everything the
//! writers produce reads back unchanged.

use std::io::Cursor;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homing_spool::format::{decode_message, encode_message, read_envelope};
use homing_spool::state::parse_log;
use homing_spool::{Envelope, MessageId, MessageKind, RecipientRecord, Source, StateRecord};
use proptest::prelude::*;

fn any_time() -> impl Strategy<Value = SystemTime> {
    (any::<bool>(), 0u64..=u64::from(u32::MAX) * 4, 0u32..1_000_000_000).prop_map(|(before, secs, nanos)| {
        let d = Duration::new(secs, nanos);
        if before { UNIX_EPOCH - d } else { UNIX_EPOCH + d }
    })
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~]{0,40}", Just(String::new())]
}

fn any_recipient() -> impl Strategy<Value = RecipientRecord> {
    (any_text(), proptest::option::of(any_text()), any::<u8>())
        .prop_map(|(address, orcpt, notify)| RecipientRecord { address, orcpt, notify })
}

fn any_envelope() -> impl Strategy<Value = Envelope> {
    (
        (any_time(), any_text(), proptest::option::of(any_text()), proptest::option::of(any::<bool>())),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (any_text(), any_text(), proptest::option::of(any_text()), proptest::option::of(any_text())),
        proptest::collection::vec(any_recipient(), 0..6),
    )
        .prop_map(
            |((received_at, return_path, envid, ret_full), (body_8bit, smtputf8, dsn), src, recipients)| {
                Envelope {
                    received_at,
                    return_path,
                    message_id: envid.as_ref().map(|e| format!("<{e}>")),
                    envid,
                    ret_full,
                    body_8bit,
                    smtputf8,
                    source: Source { peer_ip: src.0, helo: src.1, tls: src.2, auth: src.3 },
                    recipients,
                    kind: if dsn { MessageKind::Dsn } else { MessageKind::Normal },
                }
            },
        )
}

fn any_record() -> impl Strategy<Value = StateRecord> {
    (0u8..5, any::<u32>(), any_time(), any::<u32>(), any_time(), any_text()).prop_map(
        |(kind, rcpt, at, attempts, next_attempt, detail)| match kind {
            0 => StateRecord::Delivered { rcpt, at, detail },
            1 => StateRecord::Failed { rcpt, at, detail },
            2 => StateRecord::Deferred { rcpt, at, attempts, next_attempt, detail },
            3 => StateRecord::DelayNotified { rcpt, at },
            _ => StateRecord::BounceQueued { rcpt, at },
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_message(&bytes);
        let _ = read_envelope(Cursor::new(&bytes), bytes.len() as u64);
        // A lying length must not panic either.
        let _ = read_envelope(Cursor::new(&bytes), u64::MAX);
    }

    #[test]
    fn readers_never_panic_on_damaged_real_files(
        env in any_envelope(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = encode_message(&MessageId::generate(), &env, &body);
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = decode_message(&bytes);
        let _ = read_envelope(Cursor::new(&bytes), bytes.len() as u64);
    }

    #[test]
    fn message_round_trip(env in any_envelope(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let id = MessageId::generate();
        let bytes = encode_message(&id, &env, &body);
        let m = decode_message(&bytes).unwrap();
        prop_assert_eq!(&m.header.id, &id);
        prop_assert_eq!(&m.header.envelope, &env);
        prop_assert_eq!(m.body, &body[..]);
        let h = read_envelope(Cursor::new(&bytes), bytes.len() as u64).unwrap();
        prop_assert_eq!(h.envelope, env);
        prop_assert_eq!(h.body_len, body.len() as u64);
    }

    #[test]
    fn log_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let parsed = parse_log(&bytes);
        for line in bytes.split(|&b| b == b'\n') {
            let _ = StateRecord::decode_line(line);
        }
        if let Some(n) = parsed.complete_len {
            prop_assert!(n <= bytes.len() as u64);
        }
    }

    #[test]
    fn log_round_trip(records in proptest::collection::vec(any_record(), 0..20)) {
        let bytes: Vec<u8> = records.iter().flat_map(|r| r.encode_line()).collect();
        let parsed = parse_log(&bytes);
        prop_assert!(parsed.notes.is_empty());
        prop_assert_eq!(parsed.records, records);
    }

    #[test]
    fn id_parser_never_panics(s in any::<String>()) {
        let _ = s.parse::<MessageId>();
    }
}
