//! The durable suppression list: recipients whose mail failed for good because the address
//! is dead (userunknown, hostunknown, notaccept, suspend) or whose owner complained
//! (feedback). homing refuses new mail to them at RCPT; `homing suppress` manages the list.
//!
//! On disk it is one JSON-lines file (docs/suppression.md): every change is one appended,
//! fsynced line, `add` or a `remove` tombstone; when dead lines outnumber live entries the
//! file is compacted by an atomic rewrite. In memory it is a map behind a mutex, so a lookup
//! at RCPT costs a hash probe, plus at most once per `reload_interval` a stat(2) that
//! notices changes made by another process (the CLI) and reloads.

pub mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use homing_smtp::Address;

use crate::durable::{self as file, LockError, Stamp, WriteLock};
pub use record::{BadAddress, Date, Entry, Line, key, parse_address};

/// How the list behaves; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// A lookup checks the file for changes by others at most this often.
    pub reload_interval: Duration,
    /// Dead lines (tombstones, replaced and unreadable lines) that trigger a compaction, once
    /// they also outnumber the live entries.
    pub compact_after: usize,
    /// How long a writer waits for another writer's lock.
    pub lock_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reload_interval: Duration::from_secs(1),
            compact_after: 1000,
            lock_wait: Duration::from_secs(10),
        }
    }
}

/// What went wrong with the list's file.
#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    #[error("cannot {action} the suppression list {}: {source}; check the path ([suppression] path) and its permissions", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    BadAddress(#[from] BadAddress),
    #[error("another process held the lock {} for {wait:?}; retry, or find the stuck `homing suppress` process", file::sibling(path, "lock").display())]
    Busy { path: PathBuf, wait: Duration },
}

/// A line of the file that was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    pub error: String,
}

/// The outcome of [`SuppressionList::add`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    New(Entry),
    /// The address was already listed; nothing changed.
    Already(Entry),
}

pub struct SuppressionList {
    path: PathBuf,
    options: Options,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// The file state `entries` reflects; `None` before the first read or when missing.
    stamp: Option<Stamp>,
    /// Complete lines in the file, live or not.
    lines: usize,
    skipped: Vec<Skipped>,
    checked: Option<Instant>,
}

impl SuppressionList {
    /// Opens (and reads) the list at `path`; a missing file is an empty list, created (with
    /// its directory) on the first `add`.
    pub fn open(path: &Path, options: Options) -> Result<SuppressionList, SuppressError> {
        let list = SuppressionList { path: path.to_path_buf(), options, state: Mutex::default() };
        {
            let mut st = list.state();
            list.reload(&mut st)?;
        }
        Ok(list)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere (a bug); the map itself is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry for `address`, for RCPT. Picks up changes made by other processes at most
    /// once per `reload_interval`; when the file cannot be read, logs it and answers from
    /// the last good view.
    pub fn lookup(&self, address: &Address) -> Option<Entry> {
        let mut st = self.state();
        let due = st.checked.is_none_or(|t| t.elapsed() >= self.options.reload_interval);
        if due {
            st.checked = Some(Instant::now());
            if let Err(e) = self.refresh(&mut st) {
                tracing::warn!(error = %e, "suppression list not reloaded; using the last one read");
            }
        }
        st.entries.get(&key(address)).cloned()
    }

    /// The entry for `address`, as the file says now.
    pub fn get(&self, address: &Address) -> Result<Option<Entry>, SuppressError> {
        let mut st = self.state();
        self.refresh(&mut st)?;
        Ok(st.entries.get(&key(address)).cloned())
    }

    /// Every entry as the file says now, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, SuppressError> {
        let mut st = self.state();
        self.refresh(&mut st)?;
        let mut all: Vec<Entry> = st.entries.values().cloned().collect();
        all.sort_by(|a, b| (a.date, &a.address).cmp(&(b.date, &b.address)));
        Ok(all)
    }

    /// Lines ignored at the last read, for the operator to fix.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.state().skipped.clone()
    }

    /// Lists `entry.address` durably (fsynced before this returns), unless it already is.
    pub fn add(&self, entry: Entry) -> Result<Added, SuppressError> {
        let k = key(&parse_address(&entry.address)?);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", &self.path, e))?;
        }
        // The file lock first: waiting for another writer must not hold up lookups.
        let _lock = self.lock()?;
        let mut st = self.state();
        self.refresh(&mut st)?;
        if let Some(e) = st.entries.get(&k) {
            return Ok(Added::Already(e.clone()));
        }
        self.append(&mut st, &Line::Add(entry.clone()))?;
        st.entries.insert(k, entry.clone());
        Ok(Added::New(entry))
    }

    /// Lifts `address` durably; `None` when it was not listed. Compacts the file when dead
    /// lines have piled up.
    pub fn remove(&self, address: &Address, now: Date) -> Result<Option<Entry>, SuppressError> {
        let k = key(address);
        if file::stamp(&self.path).map_err(|e| io("check", &self.path, e))?.is_none() {
            return Ok(None); // no file (nor maybe its directory): nothing listed
        }
        let _lock = self.lock()?;
        let mut st = self.state();
        self.refresh(&mut st)?;
        let Some(old) = st.entries.get(&k).cloned() else { return Ok(None) };
        self.append(&mut st, &Line::Remove { address: old.address.clone(), date: now })?;
        st.entries.remove(&k);
        let dead = st.lines.saturating_sub(st.entries.len());
        if dead >= self.options.compact_after && dead > st.entries.len() {
            self.rewrite(&mut st)?;
        }
        Ok(Some(old))
    }

    fn lock(&self) -> Result<WriteLock, SuppressError> {
        WriteLock::acquire(&self.path, self.options.lock_wait).map_err(|e| match e {
            LockError::Io(e) => io("lock", &self.path, e),
            LockError::Busy => SuppressError::Busy { path: self.path.clone(), wait: self.options.lock_wait },
        })
    }

    fn append(&self, st: &mut State, line: &Line) -> Result<(), SuppressError> {
        st.stamp = Some(file::append(&self.path, &line.to_bytes()).map_err(|e| io("write", &self.path, e))?);
        st.lines += 1;
        Ok(())
    }

    /// Compacts: rewrites the file with only the live entries (oldest first), dropping
    /// tombstones, replaced lines and unreadable lines (each logged).
    fn rewrite(&self, st: &mut State) -> Result<(), SuppressError> {
        for s in &st.skipped {
            tracing::warn!(path = %self.path.display(), line = s.line, error = %s.error, "compaction drops an unreadable suppression line");
        }
        let mut live: Vec<&Entry> = st.entries.values().collect();
        live.sort_by(|a, b| (a.date, &a.address).cmp(&(b.date, &b.address)));
        let content: Vec<u8> = live.iter().flat_map(|e| Line::Add((*e).clone()).to_bytes()).collect();
        st.stamp = Some(file::rewrite(&self.path, &content).map_err(|e| io("rewrite", &self.path, e))?);
        st.lines = live.len();
        st.skipped.clear();
        Ok(())
    }

    /// Reloads when the file changed since it was last read or written by this process.
    fn refresh(&self, st: &mut State) -> Result<(), SuppressError> {
        let now = file::stamp(&self.path).map_err(|e| io("check", &self.path, e))?;
        if now == st.stamp {
            return Ok(());
        }
        self.reload(st)
    }

    fn reload(&self, st: &mut State) -> Result<(), SuppressError> {
        let Some((stamp, bytes)) = file::read(&self.path).map_err(|e| io("read", &self.path, e))? else {
            *st = State { checked: st.checked, ..State::default() };
            return Ok(());
        };
        let folded = fold(&bytes);
        for s in &folded.skipped {
            tracing::warn!(path = %self.path.display(), line = s.line, error = %s.error, "unreadable suppression line ignored; fix or delete it");
        }
        *st = State {
            entries: folded.entries,
            stamp: Some(stamp),
            lines: folded.lines,
            skipped: folded.skipped,
            checked: st.checked,
        };
        Ok(())
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> SuppressError {
    SuppressError::Io { action, path: path.to_path_buf(), source }
}

/// The list a file's lines add up to.
#[derive(Debug, Default)]
pub struct Folded {
    pub entries: HashMap<String, Entry>,
    /// Complete lines, including skipped ones.
    pub lines: usize,
    pub skipped: Vec<Skipped>,
}

/// Applies the lines in order: `add` lists (a later `add` replaces an earlier one), `remove`
/// lifts. Blank lines are ignored; a line that is not valid JSON, not a known operation, or
/// names a bad address or date is skipped and reported. A last line without its newline is
/// a write in progress (or torn by a crash) and is not read.
pub fn fold(bytes: &[u8]) -> Folded {
    let mut out = Folded::default();
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &[][..],
    };
    for (n, raw) in complete.split(|&b| b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.lines += 1;
        let parsed = serde_json::from_slice::<Line>(raw)
            .map_err(|e| format!("not a suppression record: {e}"))
            .and_then(|l| parse_address(l.address()).map(|a| (l, a)).map_err(|e| e.to_string()));
        match parsed {
            Ok((Line::Add(e), a)) => {
                out.entries.insert(key(&a), e);
            }
            Ok((Line::Remove { .. }, a)) => {
                out.entries.remove(&key(&a));
            }
            Err(error) => out.skipped.push(Skipped { line: n + 1, error }),
        }
    }
    out
}

#[cfg(test)]
mod tests;
