use super::*;
use crate::{NOTIFY_DELAY, NOTIFY_FAILURE};
use std::time::{Duration, UNIX_EPOCH};

fn sample() -> (MessageId, Envelope, Vec<u8>) {
    let env = Envelope {
        received_at: UNIX_EPOCH + Duration::new(1_732_370_400, 5),
        return_path: "alice@example.com".into(),
        envid: Some("QQ 314159 ü".into()),
        message_id: Some("<m1@example.test>".into()),
        ret_full: Some(false),
        body_8bit: true,
        smtputf8: false,
        source: Source {
            peer_ip: "192.0.2.7".into(),
            helo: "mail.example.com".into(),
            tls: Some("TLSv1.3 TLS_AES_128_GCM_SHA256".into()),
            auth: None,
        },
        recipients: vec![
            RecipientRecord {
                address: "bob@example.org".into(),
                orcpt: Some("rfc822;bob@example.org".into()),
                notify: NOTIFY_FAILURE | NOTIFY_DELAY,
            },
            RecipientRecord { address: "carol@example.net".into(), orcpt: None, notify: 0 },
        ],
        kind: MessageKind::Normal,
    };
    let body = b"Subject: hi\r\n\r\nhello\r\n.\r\n".to_vec();
    (MessageId::generate(), env, body)
}

fn decode_err(bytes: &[u8]) -> Corruption {
    match decode_message(bytes) {
        Ok(_) => panic!("corrupt file accepted"),
        Err(c) => c,
    }
}

fn envelope_err(bytes: &[u8]) -> Corruption {
    match read_envelope(io::Cursor::new(bytes), bytes.len() as u64) {
        Ok(_) => panic!("corrupt file accepted"),
        Err(ReadError::Corrupt(c)) => c,
        Err(ReadError::Io(e)) => panic!("io error {e}"),
    }
}

#[test]
fn round_trip() {
    let (id, env, body) = sample();
    let bytes = encode_message(&id, &env, &body);
    assert!(bytes.starts_with(b"HOMING-SPOOL 1\r\nid: "));
    let m = decode_message(&bytes).unwrap();
    assert_eq!(m.header.id, id);
    assert_eq!(m.header.envelope, env);
    assert_eq!(m.body, &body[..]);
    let h = read_envelope(io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
    assert_eq!(h, m.header);
}

#[test]
fn round_trip_empty_body_and_null_sender() {
    let (id, mut env, _) = sample();
    env.return_path = String::new();
    env.kind = MessageKind::Dsn;
    env.envid = None;
    env.ret_full = Some(true);
    let bytes = encode_message(&id, &env, b"");
    let m = decode_message(&bytes).unwrap();
    assert_eq!(m.header.envelope, env);
    assert!(m.body.is_empty());
}

#[test]
fn bad_magic() {
    let (id, env, body) = sample();
    let mut bytes = encode_message(&id, &env, &body);
    bytes[0] = b'X';
    assert_eq!(decode_err(&bytes), Corruption::BadMagic);
    assert_eq!(envelope_err(b"GIF89a"), Corruption::BadMagic);
    assert_eq!(envelope_err(b""), Corruption::BadMagic);
}

#[test]
fn unknown_version() {
    let (id, env, body) = sample();
    let bytes = encode_message(&id, &env, &body);
    let mut v2 = b"HOMING-SPOOL 2".to_vec();
    v2.extend_from_slice(&bytes[14..]);
    assert_eq!(envelope_err(&v2), Corruption::UnknownVersion("2".into()));
}

#[test]
fn truncated_body_and_missing_trailer() {
    let (id, env, body) = sample();
    let bytes = encode_message(&id, &env, &body);
    let trailer_at = bytes.len() - TRAILER_LEN as usize;
    let cut = &bytes[..trailer_at - 3];
    assert!(matches!(envelope_err(cut), Corruption::Truncated(_)));
    assert!(matches!(decode_err(cut), Corruption::Truncated(_)));
    let no_trailer = &bytes[..trailer_at];
    assert!(matches!(envelope_err(no_trailer), Corruption::Truncated(_)));
    let half_trailer = &bytes[..trailer_at + 10];
    assert!(matches!(envelope_err(half_trailer), Corruption::Truncated(_)));
    // A header cut short is truncation too, not a parse error.
    let head_cut = &bytes[..30];
    assert!(matches!(envelope_err(head_cut), Corruption::Truncated(_)));
}

#[test]
fn trailing_garbage() {
    let (id, env, body) = sample();
    let mut bytes = encode_message(&id, &env, &body);
    bytes.extend_from_slice(b"xx");
    assert_eq!(envelope_err(&bytes), Corruption::TrailingData(2));
}

#[test]
fn flipped_body_byte_fails_full_check_only() {
    let (id, env, body) = sample();
    let mut bytes = encode_message(&id, &env, &body);
    let at = bytes.len() - TRAILER_LEN as usize - 4;
    bytes[at] ^= 0x20;
    assert!(matches!(decode_err(&bytes), Corruption::Checksum { .. }));
    // Recovery does not read bodies; read_body catches this.
    assert!(read_envelope(io::Cursor::new(&bytes), bytes.len() as u64).is_ok());
}

#[test]
fn flipped_header_byte_fails_recovery_check() {
    let (id, env, body) = sample();
    let clean = encode_message(&id, &env, &body);
    let header_len = clean.len() - body.len() - TRAILER_LEN as usize;
    // Every single-bit flip in the header is caught, by parse or checksum.
    for i in 0..header_len {
        for bit in [0x01, 0x10, 0x80] {
            let mut bytes = clean.clone();
            bytes[i] ^= bit;
            let r = read_envelope(io::Cursor::new(&bytes), bytes.len() as u64);
            assert!(r.is_err(), "flip at {i} bit {bit:#x} accepted");
        }
    }
}

#[test]
fn flipped_trailer_byte() {
    let (id, env, body) = sample();
    let clean = encode_message(&id, &env, &body);
    for i in clean.len() - TRAILER_LEN as usize..clean.len() {
        let mut bytes = clean.clone();
        bytes[i] ^= 0x04;
        assert!(decode_message(&bytes).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn garbage_header() {
    let cases: &[&[u8]] = &[
        b"HOMING-SPOOL 1\r\nnonsense\r\n\r\n",
        b"HOMING-SPOOL 1\r\nfrobnicate: 1\r\n\r\n",
        b"HOMING-SPOOL 1\r\nid: 01JD\r\n\r\n",
        b"HOMING-SPOOL 1\r\nreturn-path: a b\r\n\r\n",
        b"HOMING-SPOOL 1\r\nsmtputf8: maybe\r\n\r\n",
        b"HOMING-SPOOL 1\r\nhelo: a\r\nhelo: b\r\n\r\n",
        b"HOMING-SPOOL 1\r\nrcpt: a notify=300\r\n\r\n",
        b"HOMING-SPOOL 1\r\nrcpt: a\r\n\r\n",
        b"HOMING-SPOOL 1\r\nbody-length: -1\r\n\r\n",
    ];
    for c in cases {
        let e = envelope_err(c);
        assert!(
            matches!(e, Corruption::BadHeader { line: 2..=3, .. }),
            "{:?} -> {e:?}",
            String::from_utf8_lossy(c)
        );
    }
    let e = envelope_err(b"HOMING-SPOOL 1\r\n\r\n");
    assert_eq!(e, Corruption::MissingField("id"));
}

#[test]
fn oversized_body_length_is_truncation_not_panic() {
    let (id, env, body) = sample();
    let bytes = encode_message(&id, &env, &body);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let forged = text.replace(&format!("body-length: {}", body.len()), "body-length: 18446744073709551615");
    let e = envelope_err(forged.as_bytes());
    assert!(matches!(e, Corruption::Truncated(_)), "{e:?}");
}
