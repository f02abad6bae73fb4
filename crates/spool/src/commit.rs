//! Group commit: many SMTP sessions share one directory fsync.
//!
//! Sessions hand messages to [`Committer::submit`]; one background thread
//! takes everything queued (up to the batch limits), writes and fsyncs the
//! files in `tmp/` on a few writer threads at once (so the file system merges
//! the fsyncs into few journal commits; see [`crate::writers`]), renames them
//! into `queue/`, fsyncs
//! `queue/` once, and only then calls each completion. While one batch is on
//! its way to disk the next one gathers, so a session waits at most for the
//! batch in flight and its own.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;

use crate::spool::Core;
use crate::writers::Writers;
use crate::{NewMessage, SpoolError, StoredMessage};

/// Called once with the outcome, on the commit thread: keep it short (send on
/// a channel). Success means the message is durably in `queue/`.
pub type Done = Box<dyn FnOnce(Result<StoredMessage, SpoolError>) + Send>;

/// Front end of the spool's commit thread. Clones share the thread, which
/// finishes the queued work and exits when the last clone and the `Spool`
/// are dropped.
#[derive(Clone)]
pub struct Committer {
    handle: Arc<Handle>,
}

struct Job {
    msg: NewMessage,
    done: Done,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// No more submissions will come; finish what is queued and exit.
    closing: bool,
    /// The thread is gone; fail submissions at once.
    stopped: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Handle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            // A completion callback may drop the last clone on the commit
            // thread itself; it then exits on its own after this batch.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Committer {
    pub(crate) fn start(core: Arc<Core>) -> Committer {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), closing: false, stopped: false }),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread =
            std::thread::Builder::new().name("spool-commit".into()).spawn(move || run(&core, &worker));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(_) => {
                // No thread: every submission fails with CommitterStopped
                // and the server answers 4xx rather than hanging.
                shared.lock().stopped = true;
                None
            }
        };
        Committer { handle: Arc::new(Handle { shared, thread }) }
    }

    /// Queue `msg` for the next group commit; `done` is called exactly once.
    pub fn submit(&self, msg: NewMessage, done: Done) {
        let shared = &self.handle.shared;
        let mut q = shared.lock();
        if q.stopped {
            drop(q);
            done(Err(SpoolError::CommitterStopped));
            return;
        }
        q.jobs.push_back(Job { msg, done });
        drop(q);
        shared.wake.notify_one();
    }

    /// Submit and wait: for callers on plain threads.
    pub fn store(&self, msg: NewMessage) -> Result<StoredMessage, SpoolError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            msg,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(SpoolError::CommitterStopped))
    }
}

/// Marks the queue stopped and fails what is left, however the thread ends.
struct StopGuard<'a>(&'a Shared);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let left: Vec<Job> = {
            let mut q = self.0.lock();
            q.stopped = true;
            q.jobs.drain(..).collect()
        };
        for job in left {
            call(job.done, Err(SpoolError::CommitterStopped));
        }
    }
}

fn run(core: &Arc<Core>, shared: &Shared) {
    let _guard = StopGuard(shared);
    let writers = Writers::start(core, core.opts.write_threads.clamp(1, 64));
    loop {
        let batch = {
            let mut q = shared.lock();
            while q.jobs.is_empty() {
                if q.closing {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            take_batch(&mut q.jobs, &core.opts)
        };
        commit(core, &writers, batch);
    }
}

/// At least one job, then more while both limits hold.
fn take_batch(jobs: &mut VecDeque<Job>, opts: &crate::SpoolOptions) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    while let Some(next) = jobs.front() {
        let size = next.msg.body.len() as u64;
        if !batch.is_empty()
            && (batch.len() >= opts.max_batch_messages || bytes.saturating_add(size) > opts.max_batch_bytes)
        {
            break;
        }
        bytes = bytes.saturating_add(size);
        if let Some(job) = jobs.pop_front() {
            batch.push(job);
        }
    }
    batch
}

fn commit(core: &Core, writers: &Writers, jobs: Vec<Job>) {
    let (msgs, dones): (Vec<NewMessage>, Vec<Done>) = jobs.into_iter().map(|j| (j.msg, j.done)).unzip();
    let (batch, written) = writers.write(core, msgs);
    let msgs = &batch.msgs;
    let mut results: Vec<Result<StoredMessage, SpoolError>> = Vec::with_capacity(msgs.len());
    let mut published = Vec::new();
    for (i, (msg, tmp)) in msgs.iter().zip(written).enumerate() {
        let r = tmp.and_then(|tmp| match core.publish(&tmp, &msg.id) {
            Ok(()) => {
                published.push(i);
                Ok(())
            }
            Err(e) => {
                core.discard_tmp(&tmp);
                Err(e)
            }
        });
        results.push(r.map(|()| StoredMessage { id: msg.id.clone(), size: msg.body.len() as u64 }));
    }
    if !published.is_empty() {
        let sync = core.spares.begin_sync();
        match core.sync_queue() {
            Ok(()) => {
                core.spares.synced(sync);
                core.count_commit(published.len());
            }
            Err(e) => {
                // The renames may or may not survive a crash; withdraw them so
                // no client is told "retry" about a message we then deliver.
                for &i in &published {
                    core.unpublish(&msgs[i].id);
                    results[i] = Err(e.copy_io());
                }
            }
        }
    }
    for (done, r) in dones.into_iter().zip(results) {
        call(done, r);
    }
}

/// A panicking callback must not take the commit thread (and every other
/// session's mail) down with it.
fn call(done: Done, r: Result<StoredMessage, SpoolError>) {
    let _ = catch_unwind(AssertUnwindSafe(move || done(r)));
}
