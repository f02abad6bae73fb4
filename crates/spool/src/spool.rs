//! The spool directory and the operations on one message: store, read,
//! record state, remove, quarantine.
//!
//! Layout under the root: `tmp/` (files being written, never trusted, and
//! spare files of removed messages to write over), `queue/` (`<id>.msg` plus
//! optional `<id>.log`), `quarantine/` (files that failed their checks, kept
//! for a human), and `lock` (held while open).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::commit::Committer;
use crate::crc::Crc32;
use crate::format::{self, Corruption};
use crate::recovery::{self, Recovery};
use crate::spare::Spares;
use crate::{MessageId, NewMessage, SpoolError, StateRecord, StoredMessage};

/// Limits and switches for a spool. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Most messages one group commit takes (default 256): bounds how long
    /// the last session in a batch waits.
    pub max_batch_messages: usize,
    /// Most body bytes one group commit takes (default 16 MiB); a single
    /// larger message still goes, alone.
    pub max_batch_bytes: u64,
    /// fsync files and directories (default true). False only in tests that
    /// say so: without it a crash loses acknowledged mail.
    pub fsync: bool,
    /// Threads that write and fsync the files of one batch in parallel
    /// (default 8, the commit thread among them; they live as long as the
    /// committer). File systems merge concurrent fsyncs into one journal
    /// commit, so this is what makes a batch cost about one fsync.
    pub write_threads: usize,
    /// Keep each recipient's last detail text in [`RecipientState::last_detail`] at
    /// recovery (default true). A server with a large queue that does not need them
    /// turns this off: the details can be far larger than the envelopes.
    ///
    /// [`RecipientState::last_detail`]: crate::RecipientState::last_detail
    pub recover_details: bool,
    /// Files of removed messages kept in `tmp/` to be written over by new
    /// ones (default 128; 0 unlinks every file at removal). Creating and
    /// unlinking a file per message costs the file system far more than
    /// rewriting one (see `spare.rs`).
    pub spare_files: usize,
    /// Only files up to this size are kept as spares (default 256 KiB), so
    /// the spares hold at most `spare_files` times this much disk. A write that
    /// finds the disk full unlinks them all and tries once more.
    pub spare_file_max_bytes: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_batch_messages: 256,
            max_batch_bytes: 16 << 20,
            fsync: true,
            write_threads: 8,
            recover_details: true,
            spare_files: 128,
            spare_file_max_bytes: 256 << 10,
        }
    }
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Commit rounds, each ending in one fsync of `queue/`.
    pub commits: u64,
    /// Messages made durable by those rounds.
    pub messages: u64,
}

/// A handle on an open spool; clones share everything.
#[derive(Clone)]
pub struct Spool {
    core: Arc<Core>,
    committer: Arc<OnceLock<Committer>>,
}

/// What the commit thread shares with the handles. Holding the lock file here
/// means the spool stays locked until the last writer is gone.
pub(crate) struct Core {
    pub(crate) tmp: PathBuf,
    pub(crate) queue: PathBuf,
    pub(crate) quarantine: PathBuf,
    pub(crate) spares: Spares,
    pub(crate) opts: SpoolOptions,
    commits: AtomicU64,
    messages: AtomicU64,
    queue_len: AtomicUsize,
    _lock: File,
}

impl Spool {
    /// Open (creating if missing) the spool at `root` and recover its content.
    pub fn open(root: &Path, opts: SpoolOptions) -> Result<(Spool, Recovery), SpoolError> {
        let dirs = [root.to_path_buf(), root.join("tmp"), root.join("queue"), root.join("quarantine")];
        for dir in &dirs {
            match fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(SpoolError::NotADirectory { path: dir.clone() }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir_all(dir).map_err(|e| SpoolError::io("create directory", dir, e))?
                }
                Err(e) => return Err(SpoolError::io("inspect", dir, e)),
            }
        }
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SpoolError::io("create lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(e)) => return Err(SpoolError::io("lock", &lock_path, e)),
        }
        let [root, tmp, queue, quarantine] = dirs;
        let core = Core {
            spares: Spares::new(&tmp, opts.spare_files, opts.spare_file_max_bytes),
            tmp,
            queue,
            quarantine,
            opts,
            commits: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            queue_len: AtomicUsize::new(0),
            _lock: lock,
        };
        if core.opts.fsync {
            // The subdirectories themselves must survive a crash.
            sync_dir(&root)?;
        }
        let recovery = recovery::recover(&core)?;
        core.queue_len.store(recovery.messages.len(), Ordering::Relaxed);
        let spool = Spool { core: Arc::new(core), committer: Arc::new(OnceLock::new()) };
        Ok((spool, recovery))
    }

    /// A fresh id for a message about to be stored.
    pub fn new_id(&self) -> MessageId {
        MessageId::generate()
    }

    /// Store one message durably, paying a full fsync round for it alone.
    /// For tools and tests; the SMTP server uses [`Spool::committer`].
    pub fn store(&self, msg: NewMessage) -> Result<StoredMessage, SpoolError> {
        let core = &self.core;
        let tmp = core.write_tmp(&msg)?;
        if let Err(e) = core.publish(&tmp, &msg.id) {
            core.discard_tmp(&tmp);
            return Err(e);
        }
        if let Err(e) = core.sync_queue() {
            core.unpublish(&msg.id);
            return Err(e);
        }
        core.count_commit(1);
        Ok(StoredMessage { id: msg.id, size: msg.body.len() as u64 })
    }

    /// The group-commit front end; the thread starts on first use.
    pub fn committer(&self) -> Committer {
        self.committer.get_or_init(|| Committer::start(Arc::clone(&self.core))).clone()
    }

    /// The body of a stored message, after checking the whole file's CRC.
    /// A file that fails is moved to `quarantine/` and reported as
    /// [`SpoolError::Quarantined`].
    pub fn read_body(&self, id: &MessageId) -> Result<Vec<u8>, SpoolError> {
        let path = self.core.msg_path(id);
        let mut bytes = fs::read(&path).map_err(|e| self.core.missing_or(id, &path, "read", e))?;
        let checked = format::decode_message(&bytes).and_then(|m| {
            if &m.header.id == id {
                Ok(m.body.len())
            } else {
                Err(Corruption::IdMismatch { file: id.to_string(), inside: m.header.id.to_string() })
            }
        });
        match checked {
            Ok(body_len) => {
                // Cut the file down to its body in place: bodies can be large.
                let end = bytes.len() - format::TRAILER_LEN as usize;
                bytes.truncate(end);
                bytes.drain(..end - body_len);
                Ok(bytes)
            }
            Err(c) => {
                let reason = c.to_string();
                Err(match self.quarantine(id, &reason) {
                    Ok(quarantined) => SpoolError::Quarantined { path, quarantined, reason },
                    Err(e) => e,
                })
            }
        }
    }

    /// Append a state record to the message's log without fsync: losing it in
    /// a power cut means one recipient is tried again, not lost.
    pub fn record(&self, id: &MessageId, rec: &StateRecord) -> Result<(), SpoolError> {
        self.core.append_log(id, rec, false)
    }

    /// Append a state record and fsync it, for records whose loss would do
    /// harm (e.g. `BounceQueued`, so a restart does not send the DSN twice).
    pub fn record_durable(&self, id: &MessageId, rec: &StateRecord) -> Result<(), SpoolError> {
        self.core.append_log(id, rec, true)
    }

    /// The message is finished with. The log goes first: a crash in between
    /// leaves a message with no state, which is delivered again (a duplicate),
    /// whereas the other order would leave a state log describing nothing.
    /// Not fsynced, for the same reason. The message file becomes a spare in
    /// `tmp/` for a new message to be written over, or is unlinked.
    pub fn remove(&self, id: &MessageId) -> Result<(), SpoolError> {
        let log = self.core.log_path(id);
        match fs::remove_file(&log) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io("remove", log, e)),
        }
        let msg = self.core.msg_path(id);
        match self.core.spares.keep(&msg) {
            Ok(true) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::NotFound { id: id.clone(), path: msg });
            }
            // Not kept (pool full, file large, or the move failed): unlink.
            Ok(false) | Err(_) => {
                fs::remove_file(&msg).map_err(|e| self.core.missing_or(id, &msg, "remove", e))?;
            }
        }
        self.core.dec_queue_len();
        Ok(())
    }

    /// Move a message (and its log) to `quarantine/`, e.g. when a later stage
    /// finds it unusable; returns where the `.msg` went. The caller logs the
    /// reason: the spool never drops a message silently.
    pub fn quarantine(&self, id: &MessageId, reason: &str) -> Result<PathBuf, SpoolError> {
        let from = self.core.msg_path(id);
        match self.core.quarantine_pair(id) {
            Ok(to) => {
                self.core.dec_queue_len();
                Ok(to)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(SpoolError::NotFound { id: id.clone(), path: from })
            }
            Err(source) => {
                Err(SpoolError::CorruptNotQuarantined { path: from, reason: reason.to_owned(), source })
            }
        }
    }

    /// Messages currently in `queue/` (as far as this process knows).
    pub fn queue_len(&self) -> usize {
        self.core.queue_len.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            commits: self.core.commits.load(Ordering::Relaxed),
            messages: self.core.messages.load(Ordering::Relaxed),
        }
    }
}

impl Core {
    pub(crate) fn msg_path(&self, id: &MessageId) -> PathBuf {
        self.queue.join(format!("{id}.msg"))
    }

    pub(crate) fn log_path(&self, id: &MessageId) -> PathBuf {
        self.queue.join(format!("{id}.log"))
    }

    pub(crate) fn count_commit(&self, messages: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.queue_len.fetch_add(messages, Ordering::Relaxed);
    }

    /// Saturating: files put into `queue/` behind our back are not counted.
    fn dec_queue_len(&self) {
        let _ = self.queue_len.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    fn missing_or(&self, id: &MessageId, path: &Path, op: &'static str, e: io::Error) -> SpoolError {
        if e.kind() == io::ErrorKind::NotFound {
            SpoolError::NotFound { id: id.clone(), path: path.to_path_buf() }
        } else {
            SpoolError::io(op, path, e)
        }
    }

    /// Write the complete file into `tmp/` and fsync it. On failure nothing is
    /// left behind.
    pub(crate) fn write_tmp(&self, msg: &NewMessage) -> Result<PathBuf, SpoolError> {
        if msg.envelope.recipients.is_empty() {
            return Err(SpoolError::InvalidMessage {
                id: msg.id.clone(),
                reason: "no recipients; it could never be delivered",
            });
        }
        match self.write_file(msg) {
            // The spares may be what fills the disk.
            Err(e) if e.is_storage_full_or_unwritable() && self.spares.release_all() > 0 => {
                self.write_file(msg)
            }
            written => written,
        }
    }

    /// Write over a spare file if there is one, else into a new file.
    fn write_file(&self, msg: &NewMessage) -> Result<PathBuf, SpoolError> {
        let (path, mut file, spare) = match self.open_spare() {
            Some((path, file)) => (path, file, true),
            None => {
                let path = self.tmp.join(format!("{}.msg", msg.id));
                match OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(f) => (path, f, false),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(SpoolError::AlreadyExists { id: msg.id.clone(), path });
                    }
                    Err(e) => return Err(SpoolError::io("create", path, e)),
                }
            }
        };
        let body_len = msg.body.len() as u64;
        let mut head = format::encode_header(&msg.id, &msg.envelope, body_len);
        let mut crc = Crc32::new();
        crc.update(&head);
        let header_crc = crc;
        crc.update(&msg.body);
        let trailer = format::encode_trailer(body_len, header_crc.finish(), crc.finish());
        let file_len = head.len() as u64 + body_len + trailer.len() as u64;
        let written = if msg.body.len() <= 64 * 1024 {
            // Small bodies: one write call instead of three.
            head.extend_from_slice(&msg.body);
            head.extend_from_slice(&trailer);
            file.write_all(&head)
        } else {
            file.write_all(&head)
                .and_then(|()| file.write_all(&msg.body))
                .and_then(|()| file.write_all(&trailer))
        };
        let synced = written
            .and_then(|()| if spare { cut_to(&file, file_len) } else { Ok(()) })
            .and_then(|()| if self.opts.fsync { file.sync_all() } else { Ok(()) });
        if let Err(e) = synced {
            drop(file);
            self.discard_tmp(&path);
            return Err(SpoolError::io("write", path, e));
        }
        Ok(path)
    }

    /// A spare file from the pool, opened for writing over.
    fn open_spare(&self) -> Option<(PathBuf, File)> {
        let path = self.spares.take()?;
        match OpenOptions::new().write(true).open(&path) {
            Ok(f) => Some((path, f)),
            Err(_) => {
                self.discard_tmp(&path);
                None
            }
        }
    }

    /// Move a written file into `queue/`, refusing to replace a stored message.
    pub(crate) fn publish(&self, tmp: &Path, id: &MessageId) -> Result<(), SpoolError> {
        let dest = self.msg_path(id);
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(SpoolError::AlreadyExists { id: id.clone(), path: dest });
        }
        fs::rename(tmp, &dest).map_err(|e| SpoolError::io("move into queue", dest, e))
    }

    pub(crate) fn sync_queue(&self) -> Result<(), SpoolError> {
        if self.opts.fsync {
            sync_dir(&self.queue)?;
        }
        Ok(())
    }

    /// Best-effort cleanup of a file we failed to store; recovery removes
    /// anything left in `tmp/` anyway.
    pub(crate) fn discard_tmp(&self, path: &Path) {
        let _ = fs::remove_file(path);
    }

    /// Best-effort removal of a message whose directory fsync failed: its
    /// sender is told to retry, so keeping it would deliver it twice.
    pub(crate) fn unpublish(&self, id: &MessageId) {
        let _ = fs::remove_file(self.msg_path(id));
    }

    fn append_log(&self, id: &MessageId, rec: &StateRecord, durable: bool) -> Result<(), SpoolError> {
        let msg = self.msg_path(id);
        if let Err(e) = fs::metadata(&msg) {
            return Err(self.missing_or(id, &msg, "inspect", e));
        }
        let path = self.log_path(id);
        let (mut file, created) = match OpenOptions::new().append(true).open(&path) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(|e| SpoolError::io("create", &path, e))?;
                (f, true)
            }
            Err(e) => return Err(SpoolError::io("open", path, e)),
        };
        // One write call: O_APPEND keeps concurrent appenders' lines whole.
        file.write_all(&rec.encode_line()).map_err(|e| SpoolError::io("append to", &path, e))?;
        if durable && self.opts.fsync {
            file.sync_data().map_err(|e| SpoolError::io("fsync", &path, e))?;
            if created {
                self.sync_queue()?;
            }
        }
        Ok(())
    }

    /// Move `<id>.msg` and `<id>.log` (if any) into `quarantine/`; returns
    /// where the `.msg` went.
    pub(crate) fn quarantine_pair(&self, id: &MessageId) -> io::Result<PathBuf> {
        let to = self.quarantine_file(&self.msg_path(id))?;
        let log = self.log_path(id);
        if fs::symlink_metadata(&log).is_ok() {
            self.quarantine_file(&log)?;
        }
        if self.opts.fsync {
            sync_dir(&self.quarantine).map_err(io::Error::other)?;
            sync_dir(&self.queue).map_err(io::Error::other)?;
        }
        Ok(to)
    }

    /// Move one file into `quarantine/` under a name not yet taken there.
    pub(crate) fn quarantine_file(&self, from: &Path) -> io::Result<PathBuf> {
        let name =
            from.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "unnamed".into());
        let mut to = self.quarantine.join(&name);
        let mut n = 1u32;
        while fs::symlink_metadata(&to).is_ok() {
            to = self.quarantine.join(format!("{name}.{n}"));
            n += 1;
        }
        fs::rename(from, &to)?;
        Ok(to)
    }
}

/// Drop whatever an older, longer content left beyond `len`.
fn cut_to(file: &File, len: u64) -> io::Result<()> {
    if file.metadata()?.len() > len {
        file.set_len(len)?;
    }
    Ok(())
}

/// fsync a directory so the names created or renamed in it are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), SpoolError> {
    File::open(path).and_then(|d| d.sync_all()).map_err(|e| SpoolError::io("fsync directory", path, e))
}
