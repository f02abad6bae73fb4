//! The user store: who may authenticate (AUTH, RFC 4954) and which addresses each user
//! owns. `homing user` manages it; the server reads it.
//!
//! On disk it is one TOML file (`record.rs`, docs/submission.md), rewritten whole on every
//! change: temporary file (mode 0600: it holds password hashes), fsync, rename, fsync of the
//! directory, all under the writers' flock — the same durable-file helpers as the
//! suppression list. In memory it is a checked [`Directory`] behind a mutex; the server
//! notices another process's change with a stat(2) at most once per `reload_interval` and
//! rereads the file. A file that does not read or check is logged and the last good view
//! kept; writers refuse to touch it until it is fixed.

pub mod password;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use homing_smtp::Address;

use crate::durable::{self, LockError, Stamp, WriteLock};
pub use record::{Directory, RecordError, User, UsersFile, Via, normalize_login, parse_address};

/// How the store behaves; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// A lookup checks the file for changes by others at most this often.
    pub reload_interval: Duration,
    /// How long a writer waits for another writer's lock.
    pub lock_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { reload_interval: Duration::from_secs(1), lock_wait: Duration::from_secs(10) }
    }
}

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cannot {action} the user store {}: {source}; check the path ([accounts] path) and its permissions", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the user store {} is not valid TOML: {detail}; fix the file or restore it from a backup", path.display())]
    Syntax { path: PathBuf, detail: String },
    #[error("the user store {}: {error}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        error: RecordError,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("user {0} already exists; change the password with `homing user passwd {0}`")]
    Exists(String),
    #[error("no user {0}; `homing user list` shows who exists")]
    Unknown(String),
    #[error("another process held the lock {} for {wait:?}; retry, or find the stuck `homing user` process", durable::sibling(path, "lock").display())]
    Busy { path: PathBuf, wait: Duration },
    #[error("cannot hash the password: {0}")]
    Hash(#[from] password::HashError),
}

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; the login as stored (lowercase).
    Accepted(String),
    /// Unknown user or wrong password: deliberately the same answer, after the same work.
    Rejected,
}

pub struct Accounts {
    path: PathBuf,
    options: Options,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    directory: Arc<Directory>,
    /// The file state `directory` reflects (or that was last found invalid).
    stamp: Option<Stamp>,
    checked: Option<Instant>,
}

impl Accounts {
    /// Opens (and reads) the store at `path`; a missing file is an empty store, created on
    /// the first change. An invalid file is an error here (at start, and for the CLI).
    pub fn open(path: &Path, options: Options) -> Result<Accounts, AccountsError> {
        let accounts = Accounts { path: path.to_path_buf(), options, state: Mutex::default() };
        {
            let mut st = accounts.state();
            let (stamp, dir) = accounts.read()?;
            *st = State { directory: Arc::new(dir), stamp, checked: Some(Instant::now()) };
        }
        Ok(accounts)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere (a bug); the directory itself is whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current view, rereading the file at most once per `reload_interval` when another
    /// process changed it. A file that no longer reads is logged and the last good view used.
    pub fn directory(&self) -> Arc<Directory> {
        let mut st = self.state();
        let due = st.checked.is_none_or(|t| t.elapsed() >= self.options.reload_interval);
        if due {
            st.checked = Some(Instant::now());
            match durable::stamp(&self.path) {
                Ok(now) if now == st.stamp => {}
                Ok(now) => match self.read() {
                    Ok((stamp, dir)) => {
                        tracing::info!(path = %self.path.display(), users = dir.users.len(), "user store reloaded");
                        st.directory = Arc::new(dir);
                        st.stamp = stamp;
                    }
                    Err(e) => {
                        // Remember the bad state so it is reported once, not every interval.
                        st.stamp = now;
                        tracing::error!(error = %e, "user store not reloaded; still using the users read before");
                    }
                },
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot check the user store for changes")
                }
            }
        }
        st.directory.clone()
    }

    /// Checks a login and password (RFC 4954 AUTH). An unknown login costs the same argon2
    /// work as a known one. Blocking and CPU-heavy (tens of milliseconds): call it off the
    /// async reactor.
    pub fn verify(&self, login: &str, password: &str) -> Verdict {
        let dir = self.directory();
        let user = normalize_login(login).ok().and_then(|l| dir.users.get(&l).cloned());
        let Some(user) = user else {
            password::verify_decoy(password);
            return Verdict::Rejected;
        };
        match password::verify(&user.password, password) {
            Ok(true) => Verdict::Accepted(user.login),
            Ok(false) => Verdict::Rejected,
            Err(e) => {
                tracing::error!(login = %user.login, error = %e, "stored password hash is unusable; set a new one with `homing user passwd`");
                password::verify_decoy(password);
                Verdict::Rejected
            }
        }
    }

    /// Who receives mail for `address` (its owner, an alias's owner, or the domain's
    /// catch-all), and how.
    pub fn resolve(&self, address: &Address) -> Option<(String, Via)> {
        self.directory().resolve(address).map(|(l, v)| (l.to_string(), v))
    }

    /// Whether `login` owns `address` (an address or alias of theirs; a catch-all does not
    /// make every address of the domain the user's to send from).
    pub fn owns(&self, login: &str, address: &Address) -> bool {
        matches!(self.directory().resolve(address), Some((l, Via::Address | Via::Alias)) if l == login)
    }

    /// Every user, by login.
    pub fn users(&self) -> Result<Vec<User>, AccountsError> {
        let (_, dir) = self.read()?;
        let mut all: Vec<User> = dir.users.into_values().collect();
        all.sort_by(|a, b| a.login.cmp(&b.login));
        Ok(all)
    }

    /// Adds a user; fails when the login exists or an address or catch-all is taken.
    pub fn add(&self, user: User) -> Result<User, AccountsError> {
        let login = normalize_login(&user.login)?;
        let user = User { login: login.clone(), ..user };
        self.change(|file| {
            if file.users.iter().any(|u| u.login == login) {
                return Err(AccountsError::Exists(login.clone()));
            }
            file.users.push(user.clone());
            Ok(())
        })?;
        Ok(user)
    }

    /// Applies `edit` to the user `login`, then checks the whole file again.
    pub fn update(&self, login: &str, edit: impl FnOnce(&mut User)) -> Result<User, AccountsError> {
        let login = normalize_login(login)?;
        let mut out = None;
        self.change(|file| {
            let u = file
                .users
                .iter_mut()
                .find(|u| u.login == login)
                .ok_or_else(|| AccountsError::Unknown(login.clone()))?;
            edit(u);
            out = Some(u.clone());
            Ok(())
        })?;
        out.ok_or(AccountsError::Unknown(login))
    }

    /// Removes the user `login`.
    pub fn delete(&self, login: &str) -> Result<User, AccountsError> {
        let login = normalize_login(login)?;
        let mut out = None;
        self.change(|file| {
            let i = file
                .users
                .iter()
                .position(|u| u.login == login)
                .ok_or_else(|| AccountsError::Unknown(login.clone()))?;
            out = Some(file.users.remove(i));
            Ok(())
        })?;
        out.ok_or(AccountsError::Unknown(login))
    }

    /// Read, change, check and rewrite the file under the writers' lock.
    fn change(
        &self,
        apply: impl FnOnce(&mut UsersFile) -> Result<(), AccountsError>,
    ) -> Result<(), AccountsError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", &self.path, e))?;
        }
        let _lock = WriteLock::acquire(&self.path, self.options.lock_wait).map_err(|e| match e {
            LockError::Io(e) => io("lock", &self.path, e),
            LockError::Busy => AccountsError::Busy { path: self.path.clone(), wait: self.options.lock_wait },
        })?;
        let mut file = self.read_file()?.1;
        apply(&mut file)?;
        let dir = Directory::build(&file)?;
        let text = toml::to_string(&file)
            .map_err(|e| AccountsError::Syntax { path: self.path.clone(), detail: e.to_string() })?;
        let content = format!("{}{text}", record::HEADER);
        let stamp = durable::rewrite_with_mode(&self.path, content.as_bytes(), 0o600)
            .map_err(|e| io("write", &self.path, e))?;
        let mut st = self.state();
        *st = State { directory: Arc::new(dir), stamp: Some(stamp), checked: Some(Instant::now()) };
        Ok(())
    }

    fn read_file(&self) -> Result<(Option<Stamp>, UsersFile), AccountsError> {
        let Some((stamp, bytes)) = durable::read(&self.path).map_err(|e| io("read", &self.path, e))? else {
            return Ok((None, UsersFile::default()));
        };
        let text = String::from_utf8_lossy(&bytes);
        let file: UsersFile = toml::from_str(&text).map_err(|e| AccountsError::Syntax {
            path: self.path.clone(),
            detail: e.to_string().trim_end().to_string(),
        })?;
        Ok((Some(stamp), file))
    }

    fn read(&self) -> Result<(Option<Stamp>, Directory), AccountsError> {
        let (stamp, file) = self.read_file()?;
        let dir = Directory::build(&file)
            .map_err(|error| AccountsError::Invalid { path: self.path.clone(), error })?;
        Ok((stamp, dir))
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> AccountsError {
    AccountsError::Io { action, path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests;
