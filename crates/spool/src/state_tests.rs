use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn all_kinds() -> Vec<StateRecord> {
    vec![
        StateRecord::Deferred {
            rcpt: 0,
            at: t(100),
            attempts: 1,
            next_attempt: t(400),
            detail: r#"{"code":451,"text":"4.7.1 greylisted, try again"}"#.into(),
        },
        StateRecord::DelayNotified { rcpt: 0, at: t(500) },
        StateRecord::Delivered { rcpt: 0, at: t(600), detail: "250 2.0.0 ok: queued as ABC%\n".into() },
        StateRecord::Failed { rcpt: 1, at: t(700), detail: String::new() },
        StateRecord::BounceQueued { rcpt: 1, at: t(800) },
    ]
}

#[test]
fn line_round_trip() {
    for rec in all_kinds() {
        let line = rec.encode_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back = StateRecord::decode_line(&line[..line.len() - 1]).unwrap();
        assert_eq!(back, rec);
    }
}

#[test]
fn deferred_then_delivered_folds_to_delivered() {
    let log: Vec<u8> = all_kinds().iter().flat_map(|r| r.encode_line()).collect();
    let parsed = parse_log(&log);
    assert!(parsed.notes.is_empty(), "{:?}", parsed.notes);
    assert_eq!(parsed.complete_len, None);
    let (states, notes) = fold(2, &parsed.records);
    assert!(notes.is_empty());
    assert_eq!(states[0].status, RecipientStatus::Delivered);
    assert_eq!(states[0].attempts, 1);
    assert_eq!(states[0].next_attempt, None);
    assert!(states[0].delay_notified);
    assert!(!states[0].bounce_queued);
    assert_eq!(states[1].status, RecipientStatus::Failed);
    assert!(states[1].bounce_queued);
}

#[test]
fn torn_last_line_is_ignored_with_note() {
    let kinds = all_kinds();
    let mut log: Vec<u8> = kinds[..2].iter().flat_map(|r| r.encode_line()).collect();
    let good_len = log.len();
    let third = kinds[2].encode_line();
    log.extend_from_slice(&third[..third.len() / 2]);
    let parsed = parse_log(&log);
    assert_eq!(parsed.records, kinds[..2].to_vec());
    assert_eq!(parsed.notes.len(), 1);
    assert!(parsed.notes[0].reason.contains("torn"), "{:?}", parsed.notes);
    assert_eq!(parsed.complete_len, Some(good_len as u64));
    let (states, _) = fold(1, &parsed.records);
    assert_eq!(states[0].status, RecipientStatus::Deferred);
    assert_eq!(states[0].next_attempt, Some(t(400)));
}

#[test]
fn garbled_lines_are_skipped_with_notes() {
    let kinds = all_kinds();
    let mut first = kinds[0].encode_line();
    first[20] ^= 0x01;
    let mut log = first;
    log.extend_from_slice(b"\n");
    log.extend_from_slice(&kinds[2].encode_line());
    let parsed = parse_log(&log);
    assert_eq!(parsed.records, vec![kinds[2].clone()]);
    assert_eq!(parsed.notes.len(), 2);
    assert!(parsed.notes[0].reason.contains("checksum"));
}

#[test]
fn final_state_sticks_and_bad_index_is_noted() {
    let recs = vec![
        StateRecord::Failed { rcpt: 0, at: t(1), detail: "550".into() },
        StateRecord::Deferred { rcpt: 0, at: t(2), attempts: 3, next_attempt: t(3), detail: "451".into() },
        StateRecord::Delivered { rcpt: 7, at: t(4), detail: "250".into() },
    ];
    let (states, notes) = fold(1, &recs);
    assert_eq!(states[0].status, RecipientStatus::Failed);
    assert_eq!(states[0].last_detail.as_deref(), Some("550"));
    assert_eq!(notes.len(), 2);
}

#[test]
fn decode_rejects_missing_fields() {
    for text in [
        "delivered rcpt=0 at=1.000000000",
        "deferred rcpt=0 at=1.000000000 detail=x",
        "bogus rcpt=0 at=1.000000000",
        "delivered at=1.000000000 detail=x",
        "delivered rcpt=99999999999 at=1.000000000 detail=x",
        "",
    ] {
        let line = format!("{:08x} {text}", crc32(text.as_bytes()));
        assert!(StateRecord::decode_line(line.as_bytes()).is_err(), "{text}");
    }
}
