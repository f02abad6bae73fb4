//! Spool bookkeeping off the delivery path: state records and removals of finished
//! messages run on one background thread, in order.
//!
//! Neither is fsynced (a lost record or removal means a duplicate delivery after a crash,
//! never a lost message), but both can still block: unlinking on a file system mounted
//! with `discard` waits for the device. Delivery workers must not wait for that.

use std::sync::mpsc;

use homing_spool::{MessageId, Spool, StateRecord};

enum Op {
    Record(MessageId, StateRecord),
    Remove(MessageId),
}

/// Hands spool updates to the background thread. Cheap to clone.
#[derive(Clone)]
pub struct Janitor {
    tx: mpsc::Sender<Op>,
}

impl Janitor {
    pub fn start(spool: Spool) -> std::io::Result<Janitor> {
        let (tx, rx) = mpsc::channel::<Op>();
        std::thread::Builder::new().name("spool-janitor".into()).spawn(move || {
            for op in rx {
                match op {
                    Op::Record(id, record) => {
                        if let Err(e) = spool.record(&id, &record) {
                            tracing::error!(queue_id = %id, error = %e, "cannot record a recipient's state; it may be retried after a restart");
                        }
                    }
                    Op::Remove(id) => {
                        if let Err(e) = spool.remove(&id) {
                            tracing::error!(queue_id = %id, error = %e, "cannot remove a finished message from the spool");
                        }
                    }
                }
            }
        })?;
        Ok(Janitor { tx })
    }

    pub fn record(&self, id: MessageId, record: StateRecord) {
        // The thread lives as long as the process; a send error cannot happen in practice
        // and would only mean a redelivery after restart.
        let _ = self.tx.send(Op::Record(id, record));
    }

    pub fn remove(&self, id: MessageId) {
        let _ = self.tx.send(Op::Remove(id));
    }
}
