//! Restart recovery: what `Spool::open` finds on disk.
//!
//! `tmp/` holds files no client was told about and spare files, so they go. Every `queue/<id>.msg`
//! is checked by header and trailer only (the body is skipped by seeking, so
//! 100,000 messages recover in about a second), its log folded into recipient
//! states. Anything that fails a check is moved to `quarantine/` and reported;
//! nothing is deleted silently.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::format::{self, Corruption, ReadError};
use crate::spare;
use crate::spool::{Core, sync_dir};
use crate::state::{self, RecipientState};
use crate::{Envelope, MessageId, SpoolError};

/// What recovery found. The caller logs `quarantined` and `notes`.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every stored message, oldest first.
    pub messages: Vec<RecoveredMessage>,
    pub quarantined: Vec<Quarantined>,
    /// Unacknowledged files deleted from `tmp/`.
    pub removed_tmp: usize,
    /// Spare files (of messages removed before the restart) deleted from `tmp/`.
    pub removed_spares: usize,
    /// Things repaired or skipped that lose nothing: torn log lines, orphan logs.
    pub notes: Vec<RecoveryNote>,
}

#[derive(Debug, Clone)]
pub struct RecoveredMessage {
    pub id: MessageId,
    pub envelope: Envelope,
    /// Body size in bytes.
    pub size: u64,
    /// Folded from the state log; index-aligned with `envelope.recipients`.
    pub recipients: Vec<RecipientState>,
}

/// A file moved out of `queue/`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the file is now, inside `quarantine/`.
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryNote {
    pub path: PathBuf,
    pub note: String,
}

/// What one message's check came to.
enum Outcome {
    Ok(Box<RecoveredMessage>, Vec<RecoveryNote>),
    Quarantined(Vec<Quarantined>),
}

pub(crate) fn recover(core: &Core) -> Result<Recovery, SpoolError> {
    let (removed_tmp, removed_spares) = clean_tmp(core)?;
    let mut rec = Recovery { removed_tmp, removed_spares, ..Recovery::default() };
    let mut msgs = BTreeSet::new();
    let mut logs = BTreeSet::new();
    let mut strays = Vec::new();
    let entries = fs::read_dir(&core.queue).map_err(|e| SpoolError::io("list", &core.queue, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io("list", &core.queue, e))?;
        let name = entry.file_name();
        let parsed = name.to_str().and_then(|n| {
            let (stem, ext) = n.split_once('.')?;
            Some((stem.parse::<MessageId>().ok()?, ext))
        });
        match parsed {
            Some((id, "msg")) => {
                msgs.insert(id);
            }
            Some((id, "log")) => {
                logs.insert(id);
            }
            _ => strays.push(entry.path()),
        }
    }
    let mut moved = false;
    for path in strays {
        let to = core.quarantine_file(&path).map_err(|e| SpoolError::io("quarantine", &path, e))?;
        rec.quarantined.push(Quarantined {
            path: to,
            reason: "unexpected file in queue/ (not <id>.msg or <id>.log)".into(),
        });
        moved = true;
    }
    for id in logs.difference(&msgs) {
        // A log whose message is gone: the message was removed and the crash
        // came before the log went. It describes nothing deliverable.
        let path = core.log_path(id);
        fs::remove_file(&path).map_err(|e| SpoolError::io("remove orphan log", &path, e))?;
        rec.notes.push(RecoveryNote { path, note: "state log without a message removed".into() });
    }
    let ids: Vec<MessageId> = msgs.into_iter().collect();
    for outcome in check_all(core, &ids, &logs)? {
        match outcome {
            Outcome::Ok(m, notes) => {
                rec.messages.push(*m);
                rec.notes.extend(notes);
            }
            Outcome::Quarantined(q) => {
                rec.quarantined.extend(q);
                moved = true;
            }
        }
    }
    if moved && core.opts.fsync {
        sync_dir(&core.quarantine)?;
        sync_dir(&core.queue)?;
    }
    Ok(rec)
}

/// Empty `tmp/`; returns how many unacknowledged files and how many spares went.
fn clean_tmp(core: &Core) -> Result<(usize, usize), SpoolError> {
    let (mut removed, mut spares) = (0, 0);
    let entries = fs::read_dir(&core.tmp).map_err(|e| SpoolError::io("list", &core.tmp, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io("list", &core.tmp, e))?;
        let path = entry.path();
        let gone = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        gone.map_err(|e| SpoolError::io("remove unacknowledged", &path, e))?;
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(spare::PREFIX)) {
            spares += 1;
        } else {
            removed += 1;
        }
    }
    Ok((removed, spares))
}

/// Check messages on a few threads: recovery time is dominated by opening
/// files, which parallelises well.
fn check_all(core: &Core, ids: &[MessageId], logs: &BTreeSet<MessageId>) -> Result<Vec<Outcome>, SpoolError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(ids.len() / 64 + 1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::with_capacity(ids.len()));
    let first_error: Mutex<Option<SpoolError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    match check_one(core, id, logs.contains(id)) {
                        Ok(o) => local.push((i, o)),
                        Err(e) => {
                            lock(&first_error).get_or_insert(e);
                            next.store(ids.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                }
                lock(&results).append(&mut local);
            });
        }
    });
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    let mut results = std::mem::take(&mut *lock(&results));
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, o)| o).collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_one(core: &Core, id: &MessageId, has_log: bool) -> Result<Outcome, SpoolError> {
    let path = core.msg_path(id);
    let file = File::open(&path).map_err(|e| SpoolError::io("open", &path, e))?;
    let len = file.metadata().map_err(|e| SpoolError::io("inspect", &path, e))?.len();
    let header = match format::read_envelope(file, len) {
        Ok(h) if &h.id == id => h,
        Ok(h) => {
            let c = Corruption::IdMismatch { file: id.to_string(), inside: h.id.to_string() };
            return quarantine(core, id, &c);
        }
        Err(ReadError::Corrupt(c)) => return quarantine(core, id, &c),
        Err(ReadError::Io(e)) => return Err(SpoolError::io("read", &path, e)),
    };
    let mut notes = Vec::new();
    let records = if has_log { read_log(core, id, &mut notes)? } else { Vec::new() };
    let (mut recipients, fold_notes) = state::fold(header.envelope.recipients.len(), &records);
    if !core.opts.recover_details {
        recipients.iter_mut().for_each(|r| r.last_detail = None);
    }
    let log_path = core.log_path(id);
    notes.extend(fold_notes.into_iter().map(|note| RecoveryNote { path: log_path.clone(), note }));
    Ok(Outcome::Ok(
        Box::new(RecoveredMessage {
            id: header.id,
            envelope: header.envelope,
            size: header.body_len,
            recipients,
        }),
        notes,
    ))
}

fn read_log(
    core: &Core,
    id: &MessageId,
    notes: &mut Vec<RecoveryNote>,
) -> Result<Vec<state::StateRecord>, SpoolError> {
    let path = core.log_path(id);
    let bytes = fs::read(&path).map_err(|e| SpoolError::io("read", &path, e))?;
    let parsed = state::parse_log(&bytes);
    notes.extend(
        parsed
            .notes
            .iter()
            .map(|n| RecoveryNote { path: path.clone(), note: format!("line {}: {}", n.line, n.reason) }),
    );
    if let Some(keep) = parsed.complete_len {
        // Cut the fragment so the next append starts on a fresh line.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(keep))
            .map_err(|e| SpoolError::io("truncate torn log", &path, e))?;
    }
    Ok(parsed.records)
}

fn quarantine(core: &Core, id: &MessageId, why: &Corruption) -> Result<Outcome, SpoolError> {
    let reason = why.to_string();
    let msg = core.msg_path(id);
    let to = core.quarantine_file(&msg).map_err(|e| SpoolError::io("quarantine", &msg, e))?;
    let mut out = vec![Quarantined { path: to, reason: reason.clone() }];
    let log = core.log_path(id);
    match core.quarantine_file(&log) {
        Ok(to) => {
            out.push(Quarantined { path: to, reason: format!("state log of a corrupt message: {reason}") })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SpoolError::io("quarantine", &log, e)),
    }
    Ok(Outcome::Quarantined(out))
}
