//! Drives the [`Queue`]: wakes deferred jobs, opens one worker per destination connection,
//! and applies each attempt's effects to the spool, the event log and the bounce writer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use homing_explain::{Evidence, ReplyEvidence, Stage, explain};
use homing_spool::{Envelope, MessageId, Spool, SpoolError, StateRecord};
use serde_json::json;
use tokio::sync::Notify;

use super::janitor::Janitor;
use super::queue::{Effect, Job, Outcome, Queue, RcptState};
use crate::deliver::{Client, ConnectError, OutMessage, Session};
use crate::outcome::{Attempted, Delivered, unix};
use crate::report::Reporter;
use crate::route::Router;
use crate::suppress::{self, Added, Entry, SuppressionList};

pub struct Runner {
    queue: Mutex<Queue>,
    wake: Notify,
    spool: Spool,
    janitor: Janitor,
    reporter: Arc<Reporter>,
    router: Router,
    client: Client,
    max_per_connection: usize,
    /// Where dead recipients go; `None` when `[suppression] enabled = false`.
    suppression: Option<Arc<SuppressionList>>,
}

impl Runner {
    pub fn new(
        queue: Queue,
        spool: Spool,
        reporter: Arc<Reporter>,
        router: Router,
        client: Client,
        max_per_connection: usize,
        suppression: Option<Arc<SuppressionList>>,
    ) -> std::io::Result<Arc<Runner>> {
        let janitor = Janitor::start(spool.clone())?;
        Ok(Arc::new(Runner {
            queue: Mutex::new(queue),
            wake: Notify::new(),
            spool,
            janitor,
            reporter,
            router,
            client,
            max_per_connection,
            suppression,
        }))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock means a panic elsewhere (a bug); keep serving what is queued.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a message to the scheduler; its first attempt starts at once (or at `due`).
    pub fn enqueue(
        &self,
        id: MessageId,
        envelope: Arc<Envelope>,
        rcpts: Vec<RcptState>,
        due: Option<SystemTime>,
    ) {
        self.queue().insert(id, envelope, rcpts, due, SystemTime::now());
        self.wake.notify_one();
    }

    pub fn queued_messages(&self) -> usize {
        self.queue().len()
    }

    /// The dispatcher loop; never returns.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = SystemTime::now();
            let (domains, next) = {
                let mut q = self.queue();
                q.wake(now);
                (q.dispatch(), q.next_wake())
            };
            for d in domains {
                tokio::spawn(self.clone().worker(d));
            }
            let sleep =
                next.map(|t| t.duration_since(now).unwrap_or_default()).unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn worker(self: Arc<Self>, domain: Arc<str>) {
        // Frees the domain's connection slot even if `work` panics (a bug): a leaked slot
        // would keep the destination from ever being served again.
        struct Exit<'a>(&'a Runner, &'a str);
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                self.0.queue().worker_exit(self.1);
                self.0.wake.notify_one();
            }
        }
        let _exit = Exit(&self, &domain);
        self.work(&domain).await;
    }

    async fn work(&self, domain: &str) {
        let Some(first) = self.queue().take(domain) else { return };
        let hosts = match self.router.route(domain).await {
            Ok(h) => h,
            Err(e) => {
                let mut ev = Evidence::bare(Stage::Route, domain);
                ev.dns = Some(e.evidence());
                self.settle_all(domain, first, ev, e.is_permanent()).await;
                return;
            }
        };
        let mut session = match self.client.connect(domain, &hosts).await {
            Ok(s) => s,
            Err(ConnectError::Busy) => {
                // Every MX address is at its connection limit (shared with other domains):
                // come back shortly, without counting an attempt.
                self.queue().later(first, SystemTime::now() + Duration::from_secs(1));
                return;
            }
            Err(ConnectError::Failed(ev)) => {
                // Unreachable hosts are temporary; a host that answered 5xx refuses for good.
                let permanent = ev.reply.as_ref().is_some_and(|r| (500..600).contains(&r.code));
                self.settle_all(domain, first, *ev, permanent).await;
                return;
            }
        };
        let mut job = first;
        let mut sent = 0;
        loop {
            if !self.deliver(&mut session, &job).await {
                return; // connection lost: the job was deferred, others wait for a new worker
            }
            sent += 1;
            if sent >= self.max_per_connection {
                break;
            }
            match self.queue().take(domain) {
                Some(j) => job = j,
                None => break,
            }
        }
        session.quit().await;
    }

    /// Gives `first` and every other job waiting for `domain` the same outcome: the
    /// destination could not be reached, so trying each one would only repeat the failure.
    async fn settle_all(&self, domain: &str, first: Job, ev: Evidence, permanent: bool) {
        let explanation = explain(&ev);
        let permanent = permanent && explanation.hard;
        let attempted = Arc::new(Attempted::new(explanation, SystemTime::now()));
        let mut jobs = vec![first];
        jobs.extend(self.queue().take_all(domain));
        for job in jobs {
            let outcome = if permanent {
                Outcome::Failed(attempted.clone())
            } else {
                Outcome::Deferred(attempted.clone())
            };
            self.attempt_event(&job, &ev, None, None);
            let outcomes = job.rcpts.iter().map(|&i| (i, outcome.clone())).collect();
            self.apply(&job, outcomes).await;
        }
    }

    /// Sends one job over an open session. False when the connection is no longer usable.
    async fn deliver(&self, session: &mut Session, job: &Job) -> bool {
        let Some(envelope) = self.queue().entry(&job.id).map(|e| e.envelope.clone()) else { return true };
        // Read on the runtime thread: the file was just written and sits in the page
        // cache, and handing every read to the blocking pool cost about a fifth of the
        // throughput on two cores (bench/, 50 KiB). A message near the size limit blocks
        // this worker for tens of milliseconds; nothing waits on that with a short timeout.
        let (why, gone) = match self.spool.read_body(&job.id) {
            Ok(body) => return self.send(session, job, &envelope, &body).await,
            // The spool moved a corrupt file to quarantine: nothing left to send, so the
            // sender is told now rather than after days of retries.
            Err(e @ (SpoolError::Quarantined { .. } | SpoolError::NotFound { .. })) => (e.to_string(), true),
            Err(e) => (e.to_string(), false),
        };
        let mut ev = Evidence::bare(Stage::Queue, &*job.domain);
        ev.network = Some(format!("the spooled message cannot be read: {why}"));
        if gone {
            tracing::error!(queue_id = %job.id, error = %why, "spooled message unreadable; its recipients are bounced");
            self.reporter.events.emit("quarantined", job.id.as_str(), "", json!({ "reason": why }));
        }
        let a = Arc::new(Attempted::new(explain(&ev), SystemTime::now()));
        let outcome = if gone { Outcome::Failed(a) } else { Outcome::Deferred(a) };
        let outcomes = job.rcpts.iter().map(|&i| (i, outcome.clone())).collect();
        self.apply(job, outcomes).await;
        true
    }

    /// Sends one message over the session and applies the outcome. False when the
    /// connection is no longer usable.
    async fn send(&self, session: &mut Session, job: &Job, envelope: &Envelope, body: &[u8]) -> bool {
        let rcpts = job
            .rcpts
            .iter()
            .filter_map(|&i| envelope.recipients.get(i as usize))
            .map(|r| (r.address.as_str(), r.notify, r.orcpt.as_deref()))
            .collect();
        let msg = OutMessage {
            return_path: &envelope.return_path,
            rcpts,
            envid: envelope.envid.as_deref(),
            ret_full: envelope.ret_full,
            body_8bit: envelope.body_8bit,
            smtputf8: envelope.smtputf8,
            body,
        };
        let now = SystemTime::now();
        let tls = session.tls.as_ref().map(|t| t.to_string()).or_else(|| session.tls_fallback.clone());
        match session.send(&msg).await {
            Ok(results) => {
                let mut outcomes = Vec::with_capacity(results.len());
                let mut ev = Evidence::bare(Stage::Dot, &*job.domain);
                ev.remote_host = Some(session.host.clone());
                ev.remote_ip = Some(session.ip.to_string());
                for (&idx, r) in job.rcpts.iter().zip(&results) {
                    let outcome = if r.reply.is_positive() {
                        Outcome::Delivered(Arc::new(Delivered {
                            reply: r.reply.to_string(),
                            remote_host: session.host.clone(),
                            remote_ip: session.ip.to_string(),
                            tls: tls.clone(),
                            at: unix(now),
                            dsn_passed_on: session.offers_dsn(),
                        }))
                    } else {
                        let mut e = ev.clone();
                        e.stage = r.stage;
                        e.reply = Some(ReplyEvidence::from(&r.reply));
                        let x = explain(&e);
                        let hard = r.reply.is_permanent() && x.hard;
                        let a = Arc::new(Attempted::new(x, now));
                        if hard { Outcome::Failed(a) } else { Outcome::Deferred(a) }
                    };
                    outcomes.push((idx, outcome));
                }
                ev.reply = results.last().map(|r| ReplyEvidence::from(&r.reply));
                self.attempt_event(job, &ev, Some(&results), tls.as_deref());
                self.apply(job, outcomes).await;
                // RFC 5321 §3.8: after 421 the server closes the channel.
                !results.iter().any(|r| r.reply.code == 421)
            }
            Err(ev) => {
                self.attempt_event(job, &ev, None, tls.as_deref());
                let a = Arc::new(Attempted::new(explain(&ev), now));
                let outcomes = job.rcpts.iter().map(|&i| (i, Outcome::Deferred(a.clone()))).collect();
                self.apply(job, outcomes).await;
                false
            }
        }
    }

    /// Logs one attempt: what was reached, the replies, and the TLS session (`tls`) or the
    /// TLS failure (in the evidence).
    fn attempt_event(
        &self,
        job: &Job,
        ev: &Evidence,
        results: Option<&[crate::deliver::RcptResult]>,
        tls: Option<&str>,
    ) {
        let Some(envelope) = self.queue().entry(&job.id).map(|e| e.envelope.clone()) else { return };
        let rcpts: Vec<serde_json::Value> = job
            .rcpts
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let addr = envelope.recipients.get(i as usize).map(|r| r.address.as_str()).unwrap_or("");
                let reply = results.and_then(|r| r.get(n)).map(|r| r.reply.to_string());
                json!({ "rcpt": addr, "reply": reply })
            })
            .collect();
        self.reporter.events.emit(
            "attempt",
            job.id.as_str(),
            envelope.message_id.as_deref().unwrap_or(""),
            json!({
                "domain": &*job.domain,
                "stage": ev.stage,
                "mx": ev.remote_host,
                "ip": ev.remote_ip,
                "tls": tls.or(ev.tls.as_deref()),
                "dns": ev.dns,
                "network": ev.network,
                "reply": ev.reply.as_ref().map(|r| r.one_line()),
                "recipients": rcpts,
            }),
        );
    }

    /// Records outcomes in the queue and carries out what follows, in order: DSNs are
    /// spooled, and dead recipients put on the suppression list, before the failures are
    /// recorded.
    async fn apply(&self, job: &Job, outcomes: Vec<(u32, Outcome)>) {
        let (envelope, effects) = {
            let mut q = self.queue();
            let envelope = q.entry(&job.id).map(|e| e.envelope.clone());
            (envelope, q.complete(job, outcomes, SystemTime::now(), fastrand::f64()))
        };
        let removing = effects.iter().any(|e| matches!(e, Effect::Remove { .. }));
        // Recipients whose bounce could not be spooled: not recorded as failed.
        let mut unsent: Vec<u32> = Vec::new();
        // One entry per DSN handled: the recipients it failed to report.
        let mut notices: Vec<Vec<u32>> = Vec::new();
        for effect in effects {
            match effect {
                Effect::Bounce { id, envelope, rcpts } => {
                    let notice = self.reporter.bounce(&self.spool, &id, &envelope, &rcpts);
                    let failed: Vec<u32> = if self.spool_notice(notice).await {
                        Vec::new()
                    } else {
                        rcpts.iter().map(|(i, _)| *i).collect()
                    };
                    unsent.extend(&failed);
                    notices.push(failed);
                }
                Effect::DelayWarning { id, envelope, rcpts, retry_until } => {
                    let notice =
                        self.reporter.delay_warning(&self.spool, &id, &envelope, &rcpts, retry_until);
                    self.spool_notice(notice).await;
                    notices.push(Vec::new());
                }
                Effect::SuccessNotice { id, envelope, rcpts } => {
                    self.spool_notice(self.reporter.success(&self.spool, &id, &envelope, &rcpts)).await;
                    notices.push(Vec::new());
                }
                Effect::Record { id, record } => {
                    if matches!(record, StateRecord::Failed { rcpt, .. } if unsent.contains(&rcpt)) {
                        continue;
                    }
                    if let (StateRecord::Failed { rcpt, detail, .. }, Some(env)) = (&record, &envelope) {
                        self.suppress_if_dead(&id, env, *rcpt, detail).await;
                    }
                    if let Some(env) = &envelope {
                        self.reporter.record_event(&id, env, &record);
                    }
                    if !removing {
                        self.janitor.record(id, record);
                    }
                }
                Effect::Remove { id } => self.janitor.remove(id),
            }
        }
        for failed in notices {
            let finished = self.queue().notice_done(&job.id, &failed, SystemTime::now(), fastrand::f64());
            if let Some(Effect::Remove { id }) = finished {
                self.janitor.remove(id);
            }
        }
    }

    /// Puts a finally failed recipient on the suppression list when its explanation says the
    /// address is dead or its owner complained (`Explanation::suppresses_recipient`; an
    /// expiry never does). The entry is on disk before the failure is recorded, so a crash
    /// in between at worst repeats the attempt and the (idempotent) listing.
    async fn suppress_if_dead(&self, id: &MessageId, env: &Envelope, rcpt: u32, detail: &str) {
        let Some(list) = &self.suppression else { return };
        let Ok(attempted) = serde_json::from_str::<Attempted>(detail) else { return };
        let why = &attempted.explanation;
        if !why.suppresses_recipient() {
            return;
        }
        let Some(r) = env.recipients.get(rcpt as usize) else { return };
        let address = match suppress::parse_address(&r.address) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(queue_id = %id, error = %e, "recipient not suppressed");
                return;
            }
        };
        let entry = Entry::from_bounce(&address, why, id.as_str(), SystemTime::now());
        let list = list.clone();
        match tokio::task::spawn_blocking(move || list.add(entry)).await {
            Ok(Ok(Added::New(e))) => self.reporter.events.emit(
                "suppressed",
                id.as_str(),
                env.message_id.as_deref().unwrap_or(""),
                json!({
                    "rcpt": e.address,
                    "reason": e.reason,
                    "status": e.status,
                    "cause": e.cause,
                    "source": e.source.to_string(),
                }),
            ),
            Ok(Ok(Added::Already(_))) => {}
            Ok(Err(e)) => {
                tracing::error!(queue_id = %id, rcpt = %r.address, error = %e, "cannot add a dead recipient to the suppression list")
            }
            Err(e) => tracing::error!(queue_id = %id, error = %e, "suppression task failed"),
        }
    }

    /// Stores a generated DSN durably and queues it for delivery. False when it could not
    /// be stored; `true` also when there was nobody to notify.
    async fn spool_notice(&self, notice: Option<homing_spool::NewMessage>) -> bool {
        let Some(msg) = notice else { return true };
        let envelope = Arc::new(msg.envelope.clone());
        let id = msg.id.clone();
        let spool = self.spool.clone();
        match tokio::task::spawn_blocking(move || spool.store(msg)).await {
            Ok(Ok(_)) => {
                let rcpts = envelope.recipients.iter().map(|_| RcptState::pending()).collect();
                self.enqueue(id, envelope, rcpts, None);
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot spool a delivery status notification; the recipients it reports are retried");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "DSN spooling task failed; the recipients it reports are retried");
                false
            }
        }
    }
}
