//! Restart recovery against real files: what survives, what is quarantined.

mod common;

use std::fs;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use common::{count_files, envelope, message, open};
use homing_spool::{MessageId, RecipientStatus, Spool, SpoolError, SpoolOptions, StateRecord, format};

fn t(s: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

#[test]
fn stored_messages_are_recovered_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let (spool, rec) = open(dir.path());
        assert!(rec.messages.is_empty());
        for i in 0..5u8 {
            let stored = spool.store(message(&spool, &[b'a' + i; 100])).unwrap();
            assert_eq!(stored.size, 100);
            ids.push(stored.id);
        }
        assert_eq!(spool.queue_len(), 5);
        assert_eq!(spool.stats().commits, 5);
    }
    let (spool, rec) = open(dir.path());
    let got: Vec<MessageId> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, ids);
    assert!(rec.quarantined.is_empty() && rec.notes.is_empty());
    let m = &rec.messages[2];
    assert_eq!(m.envelope, envelope(2));
    assert_eq!(m.size, 100);
    assert_eq!(m.recipients.len(), 2);
    assert!(m.recipients.iter().all(|r| r.status == RecipientStatus::Pending));
    assert_eq!(spool.read_body(&m.id).unwrap(), vec![b'c'; 100]);
    assert_eq!(spool.queue_len(), 5);
}

#[test]
fn tmp_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    fs::write(dir.path().join("tmp/01JD3M0Q7Z8K4T2N6B5C9X1Y0W.msg"), b"HOMING-SPOOL 1\r\n").unwrap();
    fs::write(dir.path().join("tmp/junk"), b"x").unwrap();
    let (_spool, rec) = open(dir.path());
    assert_eq!(rec.removed_tmp, 2);
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert!(rec.messages.is_empty());
}

type Corrupt = fn(&mut Vec<u8>);

/// Each way a `.msg` can go bad, applied to a stored file: name, damage,
/// and a word the quarantine reason must contain.
fn corruptions() -> Vec<(&'static str, Corrupt, &'static str)> {
    fn trailer_at(b: &[u8]) -> usize {
        b.len() - format::TRAILER_LEN as usize
    }
    vec![
        ("bad magic", |b| b[0] = b'X', "bad magic"),
        ("unknown version", |b| b[13] = b'9', "unknown spool format version"),
        ("truncated body", |b| b.truncate(trailer_at(b) - 5), "truncated"),
        ("missing trailer", |b| b.truncate(trailer_at(b)), "truncated"),
        ("flipped header byte", |b| b[40] ^= 0x01, "header"),
        (
            "flipped trailer byte",
            |b| {
                let n = b.len();
                b[n - 5] = b'g';
            },
            "trailer",
        ),
        (
            "garbage header",
            |b| {
                b.splice(16..20, *b"\x00\xff\r\n");
            },
            "header line 2",
        ),
        ("empty file", |b| b.clear(), "bad magic"),
    ]
}

#[test]
fn every_corruption_kind_is_quarantined_with_a_reason() {
    for (name, corrupt, reason) in corruptions() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = {
            let (spool, _) = open(dir.path());
            let good = spool.store(message(&spool, b"good\r\n")).unwrap().id;
            let bad = spool.store(message(&spool, b"doomed body\r\n")).unwrap().id;
            let rec = StateRecord::DelayNotified { rcpt: 0, at: t(1) };
            spool.record(&bad, &rec).unwrap();
            (good, bad)
        };
        let path = dir.path().join(format!("queue/{bad}.msg"));
        let mut bytes = fs::read(&path).unwrap();
        corrupt(&mut bytes);
        fs::write(&path, &bytes).unwrap();

        let (spool, rec) = open(dir.path());
        assert_eq!(rec.messages.len(), 1, "{name}");
        assert_eq!(rec.messages[0].id, good, "{name}");
        assert_eq!(rec.quarantined.len(), 2, "{name}: {:?}", rec.quarantined);
        let q = &rec.quarantined[0];
        assert!(q.reason.contains(reason), "{name}: reason {:?}", q.reason);
        assert_eq!(q.path, dir.path().join(format!("quarantine/{bad}.msg")));
        assert_eq!(fs::read(&q.path).unwrap(), bytes, "{name}: quarantined copy changed");
        assert!(dir.path().join(format!("quarantine/{bad}.log")).exists());
        assert!(!path.exists());
        assert!(matches!(spool.read_body(&bad), Err(SpoolError::NotFound { .. })));
    }
}

#[test]
fn flipped_body_byte_is_quarantined_by_read_body() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(message(&spool, b"0123456789\r\n")).unwrap().id;
    let path = dir.path().join(format!("queue/{id}.msg"));
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() - format::TRAILER_LEN as usize - 4;
    bytes[at] ^= 0x08;
    fs::write(&path, &bytes).unwrap();
    match spool.read_body(&id) {
        Err(e @ SpoolError::Quarantined { .. }) => {
            let text = e.to_string();
            assert!(text.contains("checksum mismatch") && text.contains("quarantine"), "{text}");
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert_eq!(spool.queue_len(), 0);
    drop(spool);
    let (_spool, rec) = open(dir.path());
    assert!(rec.messages.is_empty());
    assert!(dir.path().join(format!("quarantine/{id}.msg")).exists());
}

#[test]
fn stray_files_and_orphan_logs() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    fs::write(dir.path().join("queue/notes.txt"), b"hello").unwrap();
    let orphan = MessageId::generate();
    fs::write(dir.path().join(format!("queue/{orphan}.log")), b"").unwrap();
    let (_spool, rec) = open(dir.path());
    assert_eq!(rec.quarantined.len(), 1);
    assert!(rec.quarantined[0].path.ends_with("quarantine/notes.txt"));
    assert_eq!(rec.notes.len(), 1);
    assert!(rec.notes[0].note.contains("without a message"));
    assert_eq!(count_files(&dir.path().join("queue")), 0);
}

#[test]
fn state_log_folds_deferred_then_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (spool, _) = open(dir.path());
        let id = spool.store(message(&spool, b"x")).unwrap().id;
        let deferred = StateRecord::Deferred {
            rcpt: 0,
            at: t(10),
            attempts: 2,
            next_attempt: t(70),
            detail: "451 4.7.1 try later".into(),
        };
        spool.record(&id, &deferred).unwrap();
        spool.record(&id, &deferred).unwrap();
        let failed = StateRecord::Failed { rcpt: 1, at: t(11), detail: r#"{"code":550}"#.into() };
        spool.record_durable(&id, &failed).unwrap();
        spool.record(&id, &StateRecord::BounceQueued { rcpt: 1, at: t(12) }).unwrap();
        let delivered = StateRecord::Delivered { rcpt: 0, at: t(80), detail: "250 ok".into() };
        spool.record(&id, &delivered).unwrap();
        id
    };
    let (_spool, rec) = open(dir.path());
    let m = &rec.messages[0];
    assert_eq!(m.id, id);
    assert_eq!(m.recipients[0].status, RecipientStatus::Delivered);
    assert_eq!(m.recipients[0].attempts, 2);
    assert_eq!(m.recipients[0].last_detail.as_deref(), Some("250 ok"));
    assert_eq!(m.recipients[1].status, RecipientStatus::Failed);
    assert!(m.recipients[1].bounce_queued);
    assert!(rec.notes.is_empty(), "{:?}", rec.notes);
    drop(_spool);
    // A large queue may recover without the detail texts; the states are the same.
    let lean = SpoolOptions { recover_details: false, ..SpoolOptions::default() };
    let (_spool, rec) = Spool::open(dir.path(), lean).unwrap();
    let m = &rec.messages[0];
    assert_eq!(m.recipients[0].status, RecipientStatus::Delivered);
    assert_eq!(m.recipients[0].attempts, 2);
    assert_eq!(m.recipients[0].last_detail, None);
    assert!(m.recipients[1].bounce_queued);
}

#[test]
fn torn_log_line_is_ignored_and_cut_so_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let deferred = StateRecord::Deferred {
        rcpt: 1,
        at: t(10),
        attempts: 1,
        next_attempt: t(20),
        detail: "timeout".into(),
    };
    let id = {
        let (spool, _) = open(dir.path());
        let id = spool.store(message(&spool, b"x")).unwrap().id;
        spool.record(&id, &deferred).unwrap();
        id
    };
    let log = dir.path().join(format!("queue/{id}.log"));
    let good_len = fs::metadata(&log).unwrap().len();
    let line = StateRecord::Delivered { rcpt: 1, at: t(30), detail: "250".into() }.encode_line();
    fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(&line[..20]).unwrap();

    let (spool, rec) = open(dir.path());
    assert_eq!(rec.messages[0].recipients[1].status, RecipientStatus::Deferred);
    assert_eq!(rec.notes.len(), 1);
    assert!(rec.notes[0].note.contains("torn"), "{:?}", rec.notes);
    assert_eq!(fs::metadata(&log).unwrap().len(), good_len);

    spool.record(&id, &StateRecord::Delivered { rcpt: 1, at: t(40), detail: "250".into() }).unwrap();
    drop(spool);
    let (_spool, rec) = open(dir.path());
    assert_eq!(rec.messages[0].recipients[1].status, RecipientStatus::Delivered);
    assert!(rec.notes.is_empty());
}

#[test]
fn remove_deletes_log_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(message(&spool, b"x")).unwrap().id;
    spool.record(&id, &StateRecord::DelayNotified { rcpt: 0, at: t(1) }).unwrap();
    spool.remove(&id).unwrap();
    assert_eq!(spool.queue_len(), 0);
    assert_eq!(count_files(&dir.path().join("queue")), 0);
    assert!(matches!(spool.remove(&id), Err(SpoolError::NotFound { .. })));
    let rec = StateRecord::DelayNotified { rcpt: 0, at: t(1) };
    assert!(matches!(spool.record(&id, &rec), Err(SpoolError::NotFound { .. })));
    assert_eq!(count_files(&dir.path().join("queue")), 0, "record created an orphan log");
}

#[test]
fn bad_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let msg = message(&spool, b"x");
    spool.store(msg.clone()).unwrap();
    assert!(matches!(spool.store(msg), Err(SpoolError::AlreadyExists { .. })));
    let mut empty = message(&spool, b"x");
    empty.envelope.recipients.clear();
    assert!(matches!(spool.store(empty), Err(SpoolError::InvalidMessage { .. })));
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(spool.queue_len(), 1);
}

#[test]
fn second_open_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let _c = spool.committer();
    match Spool::open(dir.path(), SpoolOptions::default()) {
        Err(e @ SpoolError::Locked { .. }) => assert!(e.to_string().contains("lock")),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a locked spool"),
    }
    drop(_c);
    drop(spool);
    drop(open(dir.path()));
}

#[test]
fn quarantine_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let id = spool.store(message(&spool, b"x")).unwrap().id;
    let to = spool.quarantine(&id, "route says so").unwrap();
    assert_eq!(to, dir.path().join(format!("quarantine/{id}.msg")));
    assert_eq!(spool.queue_len(), 0);
    assert!(matches!(spool.quarantine(&id, "again"), Err(SpoolError::NotFound { .. })));
    drop(spool);
    let (_spool, rec) = open(dir.path());
    assert!(rec.messages.is_empty());
}
