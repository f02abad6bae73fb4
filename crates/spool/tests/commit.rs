//! Group commit and write failures, against real files and real fsync.

mod common;

use std::collections::HashSet;
use std::fs;
use std::sync::mpsc;

use common::{count_files, message, open};
use homing_spool::{MessageId, Spool, SpoolError, SpoolOptions, StoredMessage};

#[test]
fn many_threads_share_commits_and_everything_is_recovered() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let committer = spool.committer();
    let stored: Vec<Vec<StoredMessage>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let committer = committer.clone();
                let spool = spool.clone();
                s.spawn(move || {
                    // Submit all at once, then wait, like many SMTP sessions.
                    let (tx, rx) = mpsc::channel();
                    for i in 0..PER_THREAD {
                        let tx = tx.clone();
                        let body = format!("thread {t} message {i}\r\n").into_bytes();
                        committer.submit(
                            message(&spool, &body),
                            Box::new(move |r| {
                                let _ = tx.send(r);
                            }),
                        );
                    }
                    drop(tx);
                    rx.iter().map(|r| r.unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&StoredMessage> = stored.iter().flatten().collect();
    assert_eq!(all.len(), THREADS * PER_THREAD);
    let stats = spool.stats();
    assert_eq!(stats.messages, (THREADS * PER_THREAD) as u64);
    assert!(
        stats.commits < stats.messages,
        "no sharing: {} commits for {} messages",
        stats.commits,
        stats.messages
    );
    assert_eq!(spool.queue_len(), THREADS * PER_THREAD);
    drop(committer);
    drop(spool);

    let (spool, rec) = open(dir.path());
    assert_eq!(rec.messages.len(), THREADS * PER_THREAD);
    assert!(rec.quarantined.is_empty());
    let recovered: HashSet<&MessageId> = rec.messages.iter().map(|m| &m.id).collect();
    assert!(all.iter().all(|s| recovered.contains(&s.id)));
    let one = &rec.messages[rec.messages.len() / 2];
    let body = spool.read_body(&one.id).unwrap();
    assert!(body.starts_with(b"thread "));
    assert_eq!(body.len() as u64, one.size);
}

#[test]
fn batch_limits_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions { max_batch_messages: 3, max_batch_bytes: 1000, ..SpoolOptions::default() };
    let (spool, _) = Spool::open(dir.path(), opts).unwrap();
    let committer = spool.committer();
    let (tx, rx) = mpsc::channel();
    for _ in 0..30 {
        let tx = tx.clone();
        committer.submit(
            message(&spool, &[b'x'; 600]),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
    }
    drop(tx);
    assert_eq!(rx.iter().filter(|r| r.is_ok()).count(), 30);
    // 600-byte bodies and a 1000-byte limit: one message per commit.
    assert_eq!(spool.stats().commits, 30);
}

#[test]
fn committer_survives_a_panicking_callback_and_finishes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let committer = spool.committer();
    committer.submit(message(&spool, b"a"), Box::new(|_| panic!("callback bug")));
    assert!(committer.store(message(&spool, b"b")).is_ok());
    let (tx, rx) = mpsc::channel();
    for _ in 0..50 {
        let tx = tx.clone();
        committer.submit(
            message(&spool, b"c"),
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        );
    }
    drop(tx);
    drop(committer);
    drop(spool);
    // Dropping the last handle drained the queue before the thread exited.
    assert_eq!(rx.iter().filter(|ok| *ok).count(), 50);
    let (_spool, rec) = open(dir.path());
    assert_eq!(rec.messages.len(), 52);
}

/// Replace a spool subdirectory with a regular file: creating or renaming
/// into it then fails with ENOTDIR, which works even when tests run as root
/// (where permission bits would not stop us).
fn break_dir(root: &std::path::Path, name: &str) {
    let p = root.join(name);
    fs::remove_dir(&p).unwrap();
    fs::write(&p, b"not a directory").unwrap();
}

fn mend_dir(root: &std::path::Path, name: &str) {
    let p = root.join(name);
    fs::remove_file(&p).unwrap();
    fs::create_dir(&p).unwrap();
}

#[test]
fn unwritable_tmp_is_a_storage_error_and_keeps_stored_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let kept = spool.store(message(&spool, b"already stored")).unwrap().id;
    break_dir(dir.path(), "tmp");

    let err = spool.store(message(&spool, b"new")).unwrap_err();
    assert!(err.is_storage_full_or_unwritable(), "{err:?}");
    assert!(err.to_string().contains("tmp"), "{err}");
    let err = spool.committer().store(message(&spool, b"new")).unwrap_err();
    assert!(err.is_storage_full_or_unwritable(), "{err:?}");

    assert_eq!(spool.read_body(&kept).unwrap(), b"already stored");
    drop(spool);
    match Spool::open(dir.path(), SpoolOptions::default()) {
        Err(SpoolError::NotADirectory { path }) => assert!(path.ends_with("tmp")),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a spool whose tmp/ is a file"),
    }
    mend_dir(dir.path(), "tmp");
    let (_spool, rec) = open(dir.path());
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.messages[0].id, kept);
}

#[test]
fn unwritable_queue_fails_the_batch_and_leaves_no_tmp_files() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    break_dir(dir.path(), "queue");
    let committer = spool.committer();
    let (tx, rx) = mpsc::channel();
    for _ in 0..20 {
        let tx = tx.clone();
        committer.submit(
            message(&spool, b"x"),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
    }
    drop(tx);
    for r in rx {
        let e = r.unwrap_err();
        assert!(e.is_storage_full_or_unwritable(), "{e:?}");
    }
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(spool.stats().commits, 0);
}

#[test]
fn open_on_an_impossible_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    for root in [file.clone(), file.join("spool"), "/proc/homing-spool-test".into()] {
        match Spool::open(&root, SpoolOptions::default()) {
            Ok(_) => panic!("opened {}", root.display()),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains(&*root.to_string_lossy()), "{text}");
            }
        }
    }
}
