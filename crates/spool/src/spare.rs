//! Spare files: the files of removed messages, kept in `tmp/` to be written
//! over by new messages instead of being unlinked.
//!
//! Creating a file and unlinking it again was the most expensive thing the
//! spool did. ext4 without a journal, for one, avoids reusing an inode freed
//! in the last minutes and walks past every such inode whenever it allocates
//! a new one; with a thousand messages a second going through the spool, that
//! walk (`recently_deleted` in `perf`) took 35–60 % of homing's CPU time at
//! 1 KiB in `bench/run.sh`. Writing over a spare allocates no inode, frees
//! none, and reuses the blocks it already has.
//!
//! A spare is handed out only once a group commit has fsynced `queue/` after
//! the spare left it. On a file system that does not order its metadata
//! writes, a crash could otherwise bring back the old name
//! `queue/<old id>.msg` while the file already holds a new message.
//!
//! Unlike an unlinked file, a spare does not keep its content for a reader
//! that still has it open. homing removes a message only when every
//! recipient is final, so nothing reads it any more; a reader that did would
//! see a CRC mismatch, not another message's body.
//!
//! Spares hold disk space, so the pool is bounded (`SpoolOptions::spare_files`
//! files of at most `spare_file_max_bytes` each), and a write that finds the
//! disk full gives them all back before it fails ([`Spares::release_all`]).

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// File names of spares in `tmp/` start with this.
pub(crate) const PREFIX: &str = "spare-";

pub(crate) struct Spares {
    dir: PathBuf,
    max_files: usize,
    max_bytes: u64,
    pool: Mutex<Pool>,
    /// Group-commit fsyncs of `queue/` begun, and the number of the last one
    /// that completed; they run one after another on the commit thread.
    syncs_begun: AtomicU64,
    synced: AtomicU64,
}

#[derive(Default)]
struct Pool {
    /// Reusable now, the most recently added last (likeliest still cached).
    ready: Vec<PathBuf>,
    /// Left `queue/` when `syncs_begun` was the number given: reusable once a
    /// later fsync of `queue/` has completed. In order of that number.
    waiting: VecDeque<(PathBuf, u64)>,
    next_name: u64,
}

impl Spares {
    /// A pool of spares kept in `dir` (the spool's `tmp/`).
    pub(crate) fn new(dir: &Path, max_files: usize, max_bytes: u64) -> Spares {
        Spares {
            dir: dir.to_path_buf(),
            max_files,
            max_bytes,
            pool: Mutex::new(Pool::default()),
            syncs_begun: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Move the finished message file `file` into the pool. `Ok(false)` when
    /// the pool is full or the file too large: the caller unlinks it.
    pub(crate) fn keep(&self, file: &Path) -> io::Result<bool> {
        if self.max_files == 0 {
            return Ok(false);
        }
        let name = {
            let mut pool = self.lock();
            if pool.ready.len() + pool.waiting.len() >= self.max_files {
                return Ok(false);
            }
            pool.next_name += 1;
            self.dir.join(format!("{PREFIX}{}", pool.next_name))
        };
        if fs::symlink_metadata(file)?.len() > self.max_bytes {
            return Ok(false);
        }
        fs::rename(file, &name)?;
        let mut pool = self.lock();
        // Read after the rename: only an fsync begun later is sure to cover it.
        let begun = self.syncs_begun.load(Ordering::SeqCst);
        pool.waiting.push_back((name, begun));
        Ok(true)
    }

    /// A spare whose old name is gone for good, if there is one.
    pub(crate) fn take(&self) -> Option<PathBuf> {
        let synced = self.synced.load(Ordering::SeqCst);
        let mut pool = self.lock();
        while pool.waiting.front().is_some_and(|(_, begun)| *begun < synced) {
            if let Some((path, _)) = pool.waiting.pop_front() {
                pool.ready.push(path);
            }
        }
        pool.ready.pop()
    }

    /// The commit thread is about to fsync `queue/`; give the number back to
    /// [`Spares::synced`] when it succeeded.
    pub(crate) fn begin_sync(&self) -> u64 {
        self.syncs_begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn synced(&self, sync: u64) {
        self.synced.fetch_max(sync, Ordering::SeqCst);
    }

    /// Unlink every spare (the disk is full); returns how many went.
    pub(crate) fn release_all(&self) -> usize {
        let files: Vec<PathBuf> = {
            let mut pool = self.lock();
            let waiting = std::mem::take(&mut pool.waiting);
            pool.ready.drain(..).chain(waiting.into_iter().map(|(path, _)| path)).collect()
        };
        files.iter().filter(|f| fs::remove_file(f).is_ok()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, len: usize) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, vec![b'x'; len]).unwrap();
        path
    }

    #[test]
    fn a_spare_is_reusable_only_after_a_later_sync_of_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::new(dir.path(), 4, 100);
        let during = spares.begin_sync();
        assert!(spares.keep(&file(dir.path(), "a.msg", 10)).unwrap());
        // That sync began before the file left: it proves nothing about it.
        spares.synced(during);
        assert_eq!(spares.take(), None);
        let after = spares.begin_sync();
        assert_eq!(spares.take(), None, "not before the sync completes");
        spares.synced(after);
        let spare = spares.take().unwrap();
        assert!(spare.file_name().unwrap().to_str().unwrap().starts_with(PREFIX));
        assert_eq!(fs::read(&spare).unwrap(), vec![b'x'; 10]);
        assert!(!dir.path().join("a.msg").exists());
        assert_eq!(spares.take(), None);
    }

    #[test]
    fn the_pool_is_bounded_in_files_and_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::new(dir.path(), 2, 100);
        assert!(!spares.keep(&file(dir.path(), "big.msg", 101)).unwrap());
        assert!(dir.path().join("big.msg").exists(), "the caller unlinks what is not kept");
        let missing = spares.keep(&dir.path().join("missing.msg")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(spares.keep(&file(dir.path(), "a.msg", 100)).unwrap());
        assert!(spares.keep(&file(dir.path(), "b.msg", 1)).unwrap());
        assert!(!spares.keep(&file(dir.path(), "c.msg", 1)).unwrap());
        assert_eq!(spares.release_all(), 2);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "big.msg and c.msg are left");
        assert!(!Spares::new(dir.path(), 0, 100).keep(&dir.path().join("c.msg")).unwrap());
    }
}
