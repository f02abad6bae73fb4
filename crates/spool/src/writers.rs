//! The committer's writer threads: they write and fsync the files of one batch
//! into `tmp/` in parallel, so that the file system merges their fsyncs into
//! few disk flushes. They live as long as the committer: starting and ending
//! threads for every batch cost about 3 % of homing's CPU time (bench/, 50 KiB).
//!
//! The commit thread posts a batch, writes files itself like any helper, and
//! waits until every file of the batch is done.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::spool::Core;
use crate::{NewMessage, SpoolError};

/// The helper threads of one committer.
pub(crate) struct Writers {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// Counts posted batches, so a helper takes each batch at most once.
    generation: u64,
    batch: Option<Arc<Batch>>,
    closing: bool,
}

/// One batch's messages and what became of each.
pub(crate) struct Batch {
    pub(crate) msgs: Vec<NewMessage>,
    next: AtomicUsize,
    results: Mutex<Results>,
    finished: Condvar,
}

struct Results {
    slots: Vec<Option<Result<PathBuf, SpoolError>>>,
    left: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writers {
    /// `threads` writers in all, counting the commit thread, which writes too.
    /// If the system refuses threads, fewer write (at worst the commit thread alone).
    pub(crate) fn start(core: &Arc<Core>, threads: usize) -> Writers {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { generation: 0, batch: None, closing: false }),
            wake: Condvar::new(),
        });
        let helpers = (1..threads)
            .map_while(|n| {
                let (core, shared) = (Arc::clone(core), Arc::clone(&shared));
                std::thread::Builder::new()
                    .name(format!("spool-write-{n}"))
                    .spawn(move || help(&core, &shared))
                    .ok()
            })
            .collect();
        Writers { shared, helpers }
    }

    /// Write and fsync each message into `tmp/`; the results are in the
    /// messages' order, and the batch gives the messages back.
    pub(crate) fn write(
        &self,
        core: &Core,
        msgs: Vec<NewMessage>,
    ) -> (Arc<Batch>, Vec<Result<PathBuf, SpoolError>>) {
        let n = msgs.len();
        let batch = Arc::new(Batch {
            msgs,
            next: AtomicUsize::new(0),
            results: Mutex::new(Results { slots: (0..n).map(|_| None).collect(), left: n }),
            finished: Condvar::new(),
        });
        let helpers = self.helpers.len().min(n.saturating_sub(1));
        if helpers > 0 {
            let mut st = lock(&self.shared.state);
            st.generation += 1;
            st.batch = Some(Arc::clone(&batch));
            drop(st);
            for _ in 0..helpers {
                self.shared.wake.notify_one();
            }
        }
        batch.run(core);
        let results = batch.wait();
        if helpers > 0 {
            lock(&self.shared.state).batch = None;
        }
        (batch, results)
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.wake.notify_all();
        for t in self.helpers.drain(..) {
            let _ = t.join();
        }
    }
}

fn help(core: &Core, shared: &Shared) {
    let mut seen = 0;
    loop {
        let batch = {
            let mut st = lock(&shared.state);
            loop {
                if st.closing {
                    return;
                }
                if st.generation != seen {
                    seen = st.generation;
                    if let Some(b) = &st.batch {
                        break Arc::clone(b);
                    }
                }
                st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        batch.run(core);
    }
}

impl Batch {
    /// Take messages not yet taken and write them, until none is left.
    fn run(&self, core: &Core) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(msg) = self.msgs.get(i) else { return };
            // A panic here is a bug; it fails this message, not every
            // session waiting on the batch.
            let r = catch_unwind(AssertUnwindSafe(|| core.write_tmp(msg)))
                .unwrap_or(Err(SpoolError::CommitterStopped));
            let mut res = lock(&self.results);
            if let Some(slot) = res.slots.get_mut(i) {
                *slot = Some(r);
            }
            res.left -= 1;
            if res.left == 0 {
                self.finished.notify_all();
            }
        }
    }

    fn wait(&self) -> Vec<Result<PathBuf, SpoolError>> {
        let mut res = lock(&self.results);
        while res.left > 0 {
            res = self.finished.wait(res).unwrap_or_else(PoisonError::into_inner);
        }
        res.slots.drain(..).map(|s| s.unwrap_or(Err(SpoolError::CommitterStopped))).collect()
    }
}
