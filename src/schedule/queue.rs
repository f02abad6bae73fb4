//! The in-memory queue: which recipients are waiting for which destination, and what
//! happens after each attempt. Sans-IO: time comes in as an argument, decisions go out as
//! [`Effect`]s that the runner applies to the spool, the event log and the bounce writer.
//!
//! Work is cut into [`Job`]s: the recipients of one message at one domain. Each domain has
//! its own ready queue and connection count, so a slow or dead destination only ever
//! occupies its own slots (ARCHITECTURE invariant 4).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use homing_spool::{Envelope, MessageId, MessageKind, RecipientStatus, StateRecord};

use super::retry::RetryPolicy;
use crate::outcome::{Attempted, Delivered, notify_wants};

/// The recipients of one message at one destination domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: MessageId,
    pub domain: Arc<str>,
    pub rcpts: Vec<u32>,
}

/// What an attempt did for one recipient.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered(Arc<Delivered>),
    Deferred(Arc<Attempted>),
    Failed(Arc<Attempted>),
}

/// What the runner must do, in order.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Spool and queue a DSN for these recipients (failed or expired) before their
    /// `Failed` records are written, so a crash can never lose the notice.
    Bounce { id: MessageId, envelope: Arc<Envelope>, rcpts: Vec<(u32, Arc<Attempted>)> },
    /// Spool and queue a delay warning DSN for these recipients.
    DelayWarning {
        id: MessageId,
        envelope: Arc<Envelope>,
        rcpts: Vec<(u32, Arc<Attempted>)>,
        retry_until: SystemTime,
    },
    /// Spool and queue a success DSN (NOTIFY=SUCCESS, RFC 3461 §4.1).
    SuccessNotice { id: MessageId, envelope: Arc<Envelope>, rcpts: Vec<(u32, Arc<Delivered>)> },
    /// A recipient's new state: logged as an event, and appended to the message's state
    /// log unless `Remove` follows for the same message.
    Record { id: MessageId, record: StateRecord },
    /// Every recipient is final: delete the message from the spool.
    Remove { id: MessageId },
}

/// A message as the queue keeps it: the envelope (no body) and each recipient's state.
pub struct Entry {
    pub envelope: Arc<Envelope>,
    pub rcpts: Vec<RcptState>,
    /// DSNs being spooled for this message: it stays (and its file stays) until they are
    /// safely stored, because each DSN quotes the original and must not be lost.
    notices: u32,
}

#[derive(Debug, Clone)]
pub struct RcptState {
    pub status: RecipientStatus,
    pub attempts: u32,
    pub delay_notified: bool,
}

impl RcptState {
    pub fn pending() -> Self {
        Self { status: RecipientStatus::Pending, attempts: 0, delay_notified: false }
    }
    fn is_final(&self) -> bool {
        matches!(self.status, RecipientStatus::Delivered | RecipientStatus::Failed)
    }
}

#[derive(Default)]
struct Destination {
    ready: VecDeque<Job>,
    active: usize,
}

pub struct Queue {
    policy: RetryPolicy,
    max_per_domain: usize,
    max_total: usize,
    active_total: usize,
    messages: HashMap<MessageId, Entry>,
    destinations: HashMap<Arc<str>, Destination>,
    /// Deferred jobs by due time; the sequence number keeps equal times distinct.
    timers: BTreeMap<(SystemTime, u64), Job>,
    seq: u64,
    /// Where the next dispatch round starts.
    rotation: usize,
}

/// The domain part of a stored recipient address, lowercased.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// Groups recipient indices by destination domain, in order of first appearance; indices
/// outside the envelope are dropped.
fn by_domain(envelope: &Envelope, rcpts: impl Iterator<Item = u32>) -> Vec<(Arc<str>, Vec<u32>)> {
    let mut groups: Vec<(Arc<str>, Vec<u32>)> = Vec::new();
    for i in rcpts {
        let Some(r) = envelope.recipients.get(i as usize) else { continue };
        let d = domain_of(&r.address).to_ascii_lowercase();
        match groups.iter_mut().find(|(k, _)| **k == *d) {
            Some((_, v)) => v.push(i),
            None => groups.push((Arc::from(d.as_str()), vec![i])),
        }
    }
    groups
}

impl Queue {
    pub fn new(policy: RetryPolicy, max_per_domain: usize, max_total: usize) -> Self {
        Self {
            policy,
            max_per_domain: max_per_domain.max(1),
            max_total: max_total.max(1),
            active_total: 0,
            messages: HashMap::new(),
            destinations: HashMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            rotation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn entry(&self, id: &MessageId) -> Option<&Entry> {
        self.messages.get(id)
    }

    /// Adds a message. Recipients not yet final are grouped per domain into jobs, ready at
    /// once or at their `due` time (from recovery).
    pub fn insert(
        &mut self,
        id: MessageId,
        envelope: Arc<Envelope>,
        rcpts: Vec<RcptState>,
        due: Option<SystemTime>,
        now: SystemTime,
    ) {
        let open = (0..envelope.recipients.len() as u32)
            .filter(|&i| !rcpts.get(i as usize).is_some_and(RcptState::is_final));
        let by_domain = by_domain(&envelope, open);
        self.messages.insert(id.clone(), Entry { envelope, rcpts, notices: 0 });
        for (domain, list) in by_domain {
            let job = Job { id: id.clone(), domain, rcpts: list };
            match due {
                Some(t) if t > now => self.arm(t, job),
                _ => self.push_ready(job),
            }
        }
    }

    fn arm(&mut self, at: SystemTime, job: Job) {
        self.seq += 1;
        self.timers.insert((at, self.seq), job);
    }

    fn push_ready(&mut self, job: Job) {
        self.destinations.entry(job.domain.clone()).or_default().ready.push_back(job);
    }

    /// Puts a job back to be tried at `at`, without counting an attempt.
    pub fn later(&mut self, job: Job, at: SystemTime) {
        self.arm(at, job);
    }

    /// Moves every job due at `now` to its destination's ready queue.
    pub fn wake(&mut self, now: SystemTime) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let job = entry.remove();
            self.push_ready(job);
        }
    }

    /// When the next deferred job becomes due.
    pub fn next_wake(&self) -> Option<SystemTime> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// Destinations that should get one more connection now. Each returned domain counts
    /// as active until [`Queue::worker_exit`]. Connections are handed out one per
    /// destination per round, from a rotating start, so that when the global limit binds
    /// no destination is always served last.
    pub fn dispatch(&mut self) -> Vec<Arc<str>> {
        let wants = |d: &Destination, max: usize| d.ready.len() > d.active && d.active < max;
        let mut wanting: Vec<Arc<str>> = self
            .destinations
            .iter()
            .filter(|(_, d)| wants(d, self.max_per_domain))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        if wanting.is_empty() {
            return out;
        }
        self.rotation = self.rotation.wrapping_add(1);
        let n = wanting.len();
        wanting.rotate_left(self.rotation % n);
        let mut progress = true;
        while progress && self.active_total < self.max_total {
            progress = false;
            for k in &wanting {
                if self.active_total >= self.max_total {
                    break;
                }
                let Some(d) = self.destinations.get_mut(k) else { continue };
                if wants(d, self.max_per_domain) {
                    d.active += 1;
                    self.active_total += 1;
                    out.push(k.clone());
                    progress = true;
                }
            }
        }
        out
    }

    /// The next job for a connection to `domain`.
    pub fn take(&mut self, domain: &str) -> Option<Job> {
        let d = self.destinations.get_mut(domain)?;
        while let Some(job) = d.ready.pop_front() {
            if self.messages.contains_key(&job.id) {
                return Some(job);
            }
        }
        None
    }

    /// A DSN for message `id` has been dealt with. `unsent` lists recipients whose bounce
    /// could not be spooled: they go back to deferred, to fail (and bounce) again later
    /// rather than end without the sender hearing. Returns `Remove` when the message is
    /// now finished.
    pub fn notice_done(
        &mut self,
        id: &MessageId,
        unsent: &[u32],
        now: SystemTime,
        rand01: f64,
    ) -> Option<Effect> {
        let entry = self.messages.get_mut(id)?;
        entry.notices = entry.notices.saturating_sub(1);
        for &i in unsent {
            if let Some(state) = entry.rcpts.get_mut(i as usize) {
                state.status = RecipientStatus::Deferred;
            }
        }
        let retry = by_domain(&entry.envelope, unsent.iter().copied());
        let received = entry.envelope.received_at;
        let done = entry.notices == 0 && entry.rcpts.iter().all(RcptState::is_final);
        for (domain, rcpts) in retry {
            let at = self.policy.next_attempt(1, now, received, rand01).max(now);
            self.arm(at, Job { id: id.clone(), domain, rcpts });
        }
        if done {
            self.messages.remove(id);
            return Some(Effect::Remove { id: id.clone() });
        }
        None
    }

    /// All ready jobs of `domain`: when a destination is unreachable or its DNS fails,
    /// every waiting job gets the same outcome without a connection each.
    pub fn take_all(&mut self, domain: &str) -> Vec<Job> {
        let Some(d) = self.destinations.get_mut(domain) else { return Vec::new() };
        let jobs: Vec<Job> = d.ready.drain(..).collect();
        jobs.into_iter().filter(|j| self.messages.contains_key(&j.id)).collect()
    }

    pub fn worker_exit(&mut self, domain: &str) {
        if let Some(d) = self.destinations.get_mut(domain) {
            d.active = d.active.saturating_sub(1);
            self.active_total = self.active_total.saturating_sub(1);
            if d.active == 0 && d.ready.is_empty() {
                self.destinations.remove(domain);
            }
        }
    }

    /// Applies the outcome of an attempt for each recipient of `job`. `rand01` jitters the
    /// retry time.
    pub fn complete(
        &mut self,
        job: &Job,
        outcomes: Vec<(u32, Outcome)>,
        now: SystemTime,
        rand01: f64,
    ) -> Vec<Effect> {
        let Some(entry) = self.messages.get_mut(&job.id) else { return Vec::new() };
        let env = entry.envelope.clone();
        let may_notify = !env.return_path.is_empty() && env.kind == MessageKind::Normal;
        let mut bounce = Vec::new();
        let mut delayed = Vec::new();
        let mut success = Vec::new();
        let mut records = Vec::new();
        let mut retry = Vec::new();
        let expired = self.policy.is_expired(env.received_at, now);
        let warn_due = self.policy.delay_warning_due(env.received_at, now);
        for (idx, outcome) in outcomes {
            let Some(state) = entry.rcpts.get_mut(idx as usize) else { continue };
            let notify = env.recipients.get(idx as usize).map(|r| r.notify).unwrap_or(0);
            state.attempts += 1;
            match outcome {
                Outcome::Delivered(d) => {
                    state.status = RecipientStatus::Delivered;
                    records.push(StateRecord::Delivered { rcpt: idx, at: now, detail: d.to_json() });
                    // RFC 3461 §5.2.2: when NOTIFY went on to a DSN-capable next hop, the
                    // success report is its to give; otherwise homing reports "relayed".
                    if may_notify && !d.dsn_passed_on && notify_wants(notify, homing_spool::NOTIFY_SUCCESS) {
                        success.push((idx, d));
                    }
                }
                Outcome::Failed(a) => {
                    state.status = RecipientStatus::Failed;
                    records.push(StateRecord::Failed { rcpt: idx, at: now, detail: a.to_json() });
                    if may_notify && notify_wants(notify, homing_spool::NOTIFY_FAILURE) {
                        bounce.push((idx, a.clone()));
                    }
                }
                Outcome::Deferred(a) if expired => {
                    let a = Arc::new(a.expired(env.received_at, now));
                    state.status = RecipientStatus::Failed;
                    records.push(StateRecord::Failed { rcpt: idx, at: now, detail: a.to_json() });
                    if may_notify && notify_wants(notify, homing_spool::NOTIFY_FAILURE) {
                        bounce.push((idx, a.clone()));
                    }
                }
                Outcome::Deferred(a) => {
                    state.status = RecipientStatus::Deferred;
                    let next = self.policy.next_attempt(state.attempts, now, env.received_at, rand01);
                    records.push(StateRecord::Deferred {
                        rcpt: idx,
                        at: now,
                        attempts: state.attempts,
                        next_attempt: next,
                        detail: a.to_json(),
                    });
                    if warn_due && !state.delay_notified {
                        state.delay_notified = true;
                        records.push(StateRecord::DelayNotified { rcpt: idx, at: now });
                        if may_notify && notify_wants(notify, homing_spool::NOTIFY_DELAY) {
                            delayed.push((idx, a.clone()));
                        }
                    }
                    retry.push((idx, next));
                }
            }
        }
        let mut effects = Vec::new();
        if !bounce.is_empty() {
            effects.push(Effect::Bounce { id: job.id.clone(), envelope: env.clone(), rcpts: bounce });
        }
        if !delayed.is_empty() {
            let retry_until = self.policy.expires_at(env.received_at);
            effects.push(Effect::DelayWarning {
                id: job.id.clone(),
                envelope: env.clone(),
                rcpts: delayed,
                retry_until,
            });
        }
        if !success.is_empty() {
            effects.push(Effect::SuccessNotice { id: job.id.clone(), envelope: env.clone(), rcpts: success });
        }
        entry.notices += effects.len() as u32;
        let done = entry.notices == 0 && entry.rcpts.iter().all(RcptState::is_final);
        effects.extend(records.into_iter().map(|record| Effect::Record { id: job.id.clone(), record }));
        if done {
            self.messages.remove(&job.id);
            effects.push(Effect::Remove { id: job.id.clone() });
        } else if let Some(at) = retry.iter().map(|(_, t)| *t).min() {
            let rcpts = retry.into_iter().map(|(i, _)| i).collect();
            self.arm(at, Job { id: job.id.clone(), domain: job.domain.clone(), rcpts });
        }
        effects
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
