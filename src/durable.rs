//! Small durable files (the suppression list, the user store): durable appends, atomic
//! rewrites, the writers' lock, and the stamp that tells a reader the file changed.
//!
//! Writers (the server, `homing suppress`, `homing user`) hold an exclusive flock(2) on
//! `<file>.lock` while they read, append or rewrite. Readers take no lock: an append becomes visible as
//! whole lines (a line without its newline yet is ignored), and a rewrite is a rename, so a
//! reader sees the old file or the new one.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What identifies one state of the file: a writer changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The file's stamp, `None` when it does not exist.
pub fn stamp(path: &Path) -> io::Result<Option<Stamp>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The whole file and the stamp taken before reading it (so any later change shows as a
/// different stamp); `None` when it does not exist.
pub fn read(path: &Path) -> io::Result<Option<(Stamp, Vec<u8>)>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stamp = Stamp::of(&f.metadata()?);
    let mut buf = Vec::with_capacity(stamp.len as usize);
    f.read_to_end(&mut buf)?;
    Ok(Some((stamp, buf)))
}

/// Appends `line` (one complete line with its newline) and fsyncs it; a new file's directory
/// entry is fsynced too. A torn last line left by a crash is first closed with a newline, so
/// it stays one bad line instead of swallowing this one. Returns the new stamp.
pub fn append(path: &Path, line: &[u8]) -> io::Result<Stamp> {
    let (mut f, created) = match OpenOptions::new().read(true).append(true).create_new(true).open(path) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            (OpenOptions::new().read(true).append(true).open(path)?, false)
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        f.read_exact_at(&mut last, len - 1)?;
    }
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    f.write_all(line)?;
    f.sync_data()?;
    if created {
        sync_dir(path)?;
    }
    Ok(Stamp::of(&f.metadata()?))
}

/// Replaces the file with `content`: write a temporary file, fsync it, rename it over the
/// file, fsync the directory. A crash leaves the old file or the new one, never a mix.
pub fn rewrite(path: &Path, content: &[u8]) -> io::Result<Stamp> {
    rewrite_with_mode(path, content, 0o666)
}

/// [`rewrite`], the new file created with permission bits `mode` (less the umask): `0o600`
/// for a file of secrets.
pub fn rewrite_with_mode(path: &Path, content: &[u8], mode: u32) -> io::Result<Stamp> {
    let tmp = sibling(path, "tmp");
    // A temporary file left by a crash keeps its old mode when opened: start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(path)?;
    stamp(path)?.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "vanished after rename"))
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// `<file>.<ext>` next to the file: `suppression.jsonl.lock`.
pub fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(ext);
    path.with_file_name(name)
}

/// The writers' lock, held until dropped (closing the file releases the flock).
pub struct WriteLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    Io(io::Error),
    /// Another process held it for the whole wait.
    Busy,
}

impl WriteLock {
    /// Takes the lock on `<file>.lock`, waiting up to `wait` for another writer (each
    /// holds it for one append or rewrite, milliseconds).
    pub fn acquire(path: &Path, wait: Duration) -> Result<WriteLock, LockError> {
        let lock_path = sibling(path, "lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(LockError::Io)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(WriteLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => return Err(LockError::Busy),
                Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
            }
        }
    }
}
