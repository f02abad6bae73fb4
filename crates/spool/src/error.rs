//! Errors of the spool. Each names the path involved and what to do about it,
//! because the operator reading the log is the one who has to fix it.

use std::io;
use std::path::PathBuf;

use crate::MessageId;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The disk is full, over quota, read-only, or homing may not write there.
    /// The SMTP server answers `452 4.3.1` and the client retries later.
    #[error(
        "cannot {op} {path}: {source}; the spool is full or unwritable: free disk space, \
         raise the quota, remount read-write, or give the homing user write access"
    )]
    StorageUnavailable {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Any other I/O failure.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A spool directory path exists but is not a directory.
    #[error(
        "spool path {path} exists but is not a directory; move it away or point the spool \
         at another directory"
    )]
    NotADirectory { path: PathBuf },

    /// Another process (or another `Spool` in this one) holds the spool lock.
    #[error(
        "spool {path} is locked by another process; two queue runners on one spool would \
         deliver every message twice: stop the other homing or use a different spool directory"
    )]
    Locked { path: PathBuf },

    /// No message with this id is in `queue/`.
    #[error("message {id} is not in the spool (no {path}); it was removed or never stored")]
    NotFound { id: MessageId, path: PathBuf },

    /// A message with this id is already stored; ids must be fresh from `Spool::new_id`.
    #[error("message {id} already exists at {path}; take a fresh id from Spool::new_id")]
    AlreadyExists { id: MessageId, path: PathBuf },

    /// The message cannot be stored as given.
    #[error("message {id} cannot be stored: {reason}")]
    InvalidMessage { id: MessageId, reason: &'static str },

    /// A stored file failed its checks and was moved out of the queue.
    #[error(
        "spool file {path} is corrupt ({reason}); it was moved to {quarantined} for inspection \
         and will not be delivered"
    )]
    Quarantined { path: PathBuf, quarantined: PathBuf, reason: String },

    /// A stored file failed its checks and could not even be moved aside.
    #[error(
        "spool file {path} is corrupt ({reason}) and moving it to quarantine failed: {source}; \
         move it out of queue/ by hand"
    )]
    CorruptNotQuarantined {
        path: PathBuf,
        reason: String,
        #[source]
        source: io::Error,
    },

    /// The group-commit thread is gone (it only stops if a completion callback panicked).
    #[error("the spool's commit thread has stopped; restart homing")]
    CommitterStopped,
}

impl SpoolError {
    /// True when the failure is about space or write permission rather than a
    /// bug or a corrupt file: the SMTP server maps it to `452 4.3.1`.
    pub fn is_storage_full_or_unwritable(&self) -> bool {
        matches!(self, SpoolError::StorageUnavailable { .. })
    }

    /// The same failure again, for telling every message of a batch about
    /// one shared error (`io::Error` is not `Clone`).
    pub(crate) fn copy_io(&self) -> SpoolError {
        let copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            SpoolError::StorageUnavailable { op, path, source } => {
                SpoolError::StorageUnavailable { op, path: path.clone(), source: copy(source) }
            }
            SpoolError::Io { op, path, source } => {
                SpoolError::Io { op, path: path.clone(), source: copy(source) }
            }
            other => SpoolError::Io {
                op: "commit",
                path: PathBuf::new(),
                source: io::Error::other(other.to_string()),
            },
        }
    }

    /// Classify an I/O error on `path` into the right variant.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> SpoolError {
        let path = path.into();
        if is_storage_error(&source) {
            SpoolError::StorageUnavailable { op, path, source }
        } else {
            SpoolError::Io { op, path, source }
        }
    }
}

/// ENOSPC, EDQUOT, EROFS, EACCES, EPERM, ENOTDIR, EFBIG: the spool cannot take
/// more data right now, but nothing is wrong with what it already holds.
fn is_storage_error(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::StorageFull
            | K::QuotaExceeded
            | K::ReadOnlyFilesystem
            | K::PermissionDenied
            | K::NotADirectory
            | K::FileTooLarge
    ) {
        return true;
    }
    // Linux numbers, for kinds std reports as `Other` on some platforms.
    matches!(e.raw_os_error(), Some(1 | 13 | 20 | 27 | 28 | 30 | 122))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_are_classified() {
        for errno in [28, 122, 30, 13, 1, 20] {
            let e = SpoolError::io("write", "/x", io::Error::from_raw_os_error(errno));
            assert!(e.is_storage_full_or_unwritable(), "errno {errno}");
            assert!(e.to_string().contains("/x"));
        }
        let e = SpoolError::io("write", "/x", io::Error::from_raw_os_error(5));
        assert!(!e.is_storage_full_or_unwritable());
    }
}
