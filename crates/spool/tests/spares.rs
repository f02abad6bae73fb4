//! Spare files: a removed message's file is written over by a later message,
//! only once `queue/` was fsynced after it left, and never outlives a restart.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{count_files, message, open};
use homing_spool::{MessageId, Spool, SpoolOptions};

fn inode(root: &Path, id: &MessageId) -> u64 {
    fs::metadata(root.join(format!("queue/{id}.msg"))).unwrap().ino()
}

fn spares_in_tmp(root: &Path) -> usize {
    fs::read_dir(root.join("tmp"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().starts_with("spare-"))
        .count()
}

#[test]
fn a_removed_file_is_written_over_once_the_queue_was_fsynced_since() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let committer = spool.committer();
    let long = committer.store(message(&spool, &[b'L'; 5000])).unwrap().id;
    let old_inode = inode(dir.path(), &long);
    spool.remove(&long).unwrap();
    assert_eq!(spares_in_tmp(dir.path()), 1, "the file waits in tmp/");
    assert_eq!(count_files(&dir.path().join("queue")), 0);

    // Written before any fsync of queue/ followed the removal: a new file.
    let first = committer.store(message(&spool, b"first\r\n")).unwrap().id;
    assert_ne!(inode(dir.path(), &first), old_inode);
    // That commit's fsync covered the removal: now the spare is used.
    let second = committer.store(message(&spool, b"second\r\n")).unwrap().id;
    assert_eq!(inode(dir.path(), &second), old_inode);
    assert_eq!(spares_in_tmp(dir.path()), 0);

    // The shorter content was cut to size: it reads back and recovers.
    assert_eq!(spool.read_body(&second).unwrap(), b"second\r\n");
    drop(committer);
    drop(spool);
    let (spool, rec) = open(dir.path());
    assert!(rec.quarantined.is_empty(), "{:?}", rec.quarantined);
    let ids: Vec<&MessageId> = rec.messages.iter().map(|m| &m.id).collect();
    assert_eq!(ids, [&first, &second]);
    assert_eq!(spool.read_body(&second).unwrap(), b"second\r\n");
}

#[test]
fn spares_are_deleted_at_open_and_counted_apart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path());
        for _ in 0..3 {
            let id = spool.store(message(&spool, b"x")).unwrap().id;
            spool.remove(&id).unwrap();
        }
        assert_eq!(spares_in_tmp(dir.path()), 3);
    }
    fs::write(dir.path().join("tmp/01JD3M0Q7Z8K4T2N6B5C9X1Y0W.msg"), b"HOMING").unwrap();
    let (_spool, rec) = open(dir.path());
    assert_eq!((rec.removed_tmp, rec.removed_spares), (1, 3));
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
}

#[test]
fn the_pool_keeps_few_small_files_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions { spare_files: 2, spare_file_max_bytes: 2000, ..SpoolOptions::default() };
    let (spool, _) = Spool::open(dir.path(), opts).unwrap();
    let big = spool.store(message(&spool, &[b'b'; 3000])).unwrap().id;
    spool.remove(&big).unwrap();
    assert_eq!(count_files(&dir.path().join("tmp")), 0, "too large to keep");
    for _ in 0..3 {
        let id = spool.store(message(&spool, b"x")).unwrap().id;
        spool.remove(&id).unwrap();
    }
    assert_eq!(spares_in_tmp(dir.path()), 2);
    assert_eq!(spool.queue_len(), 0);
    drop(spool);

    let dir = tempfile::tempdir().unwrap();
    let off = SpoolOptions { spare_files: 0, ..SpoolOptions::default() };
    let (spool, _) = Spool::open(dir.path(), off).unwrap();
    let id = spool.store(message(&spool, b"x")).unwrap().id;
    spool.remove(&id).unwrap();
    assert_eq!(count_files(&dir.path().join("tmp")), 0);
    assert_eq!(count_files(&dir.path().join("queue")), 0);
}
