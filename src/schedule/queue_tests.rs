//! The queue's decisions with an injected clock: no sleeping, exact times.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use homing_explain::{Evidence, ReplyEvidence, Stage, explain};
use homing_spool::{Envelope, MessageId, MessageKind, RecipientRecord, Source, StateRecord};

use super::*;
use crate::outcome::{Attempted, Delivered};

const H: u64 = 3600;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        intervals: vec![Duration::from_secs(300), Duration::from_secs(1200)],
        jitter: 0.2,
        lifetime: Duration::from_secs(24 * H),
        delay_warning: Some(Duration::from_secs(4 * H)),
    }
}

fn envelope(rcpts: &[(&str, u8)], return_path: &str) -> Arc<Envelope> {
    Arc::new(Envelope {
        received_at: t(0),
        return_path: return_path.into(),
        envid: None,
        message_id: Some("<m@test>".into()),
        ret_full: None,
        body_8bit: false,
        smtputf8: false,
        source: Source::default(),
        recipients: rcpts
            .iter()
            .map(|(a, n)| RecipientRecord { address: a.to_string(), orcpt: None, notify: *n })
            .collect(),
        kind: MessageKind::Normal,
    })
}

fn add(q: &mut Queue, rcpts: &[(&str, u8)], return_path: &str) -> MessageId {
    let id = MessageId::generate();
    let env = envelope(rcpts, return_path);
    let states = env.recipients.iter().map(|_| RcptState::pending()).collect();
    q.insert(id.clone(), env, states, None, t(0));
    id
}

fn soft() -> Outcome {
    let mut ev = Evidence::bare(Stage::Rcpt, "b.test");
    ev.reply = Some(ReplyEvidence { code: 451, status: Some("4.3.0".into()), text: "try later".into() });
    Outcome::Deferred(Arc::new(Attempted::new(explain(&ev), t(0))))
}

fn hard() -> Outcome {
    let mut ev = Evidence::bare(Stage::Rcpt, "b.test");
    ev.reply = Some(ReplyEvidence { code: 550, status: Some("5.1.1".into()), text: "User unknown".into() });
    Outcome::Failed(Arc::new(Attempted::new(explain(&ev), t(0))))
}

fn delivered() -> Outcome {
    Outcome::Delivered(Arc::new(Delivered {
        reply: "250 ok".into(),
        remote_host: "mx".into(),
        remote_ip: "127.0.0.1".into(),
        tls: None,
        at: 0,
        dsn_passed_on: false,
    }))
}

fn names(effects: &[Effect]) -> Vec<&'static str> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Bounce { .. } => "bounce",
            Effect::DelayWarning { .. } => "delay",
            Effect::SuccessNotice { .. } => "success",
            Effect::Record { record: StateRecord::Delivered { .. }, .. } => "delivered",
            Effect::Record { record: StateRecord::Deferred { .. }, .. } => "deferred",
            Effect::Record { record: StateRecord::Failed { .. }, .. } => "failed",
            Effect::Record { record: StateRecord::DelayNotified { .. }, .. } => "notified",
            Effect::Record { .. } => "record",
            Effect::Remove { .. } => "remove",
        })
        .collect()
}

#[test]
fn first_attempt_is_immediate_and_recipients_group_by_domain() {
    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@x.test", 0), ("b@y.test", 0), ("c@x.test", 0)], "s@s.test");
    let mut d = q.dispatch();
    d.sort();
    assert_eq!(d, vec![Arc::from("x.test"), Arc::from("y.test")]);
    assert_eq!(q.take("x.test").unwrap().rcpts, vec![0, 2]);
    assert_eq!(q.take("y.test").unwrap().rcpts, vec![1]);
}

#[test]
fn a_deferral_waits_the_backoff_then_comes_back() {
    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    let eff = q.complete(&job, vec![(0, soft())], t(0), 0.5);
    assert_eq!(names(&eff), vec!["deferred"]);
    let Effect::Record { record: StateRecord::Deferred { next_attempt, attempts, .. }, .. } = &eff[0] else {
        panic!()
    };
    assert_eq!((*next_attempt, *attempts), (t(300), 1));
    q.worker_exit("b.test");
    assert_eq!(q.next_wake(), Some(t(300)));
    q.wake(t(299));
    assert!(q.dispatch().is_empty(), "not before its time");
    q.wake(t(300));
    assert_eq!(q.dispatch(), vec![Arc::from("b.test")]);
    let job = q.take("b.test").unwrap();
    // the second wait is the second interval, jittered by at most 20%
    let eff = q.complete(&job, vec![(0, soft())], t(300), 0.0);
    let Effect::Record { record: StateRecord::Deferred { next_attempt, .. }, .. } = &eff[0] else { panic!() };
    assert_eq!(*next_attempt, t(300 + 960));
}

#[test]
fn expiry_bounces_with_the_last_error() {
    let mut q = Queue::new(policy(), 10, 100);
    let id = add(&mut q, &[("a@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    let eff = q.complete(&job, vec![(0, soft())], t(24 * H), 0.5);
    assert_eq!(names(&eff), vec!["bounce", "failed"]);
    let Effect::Bounce { rcpts, .. } = &eff[0] else { panic!() };
    assert_eq!(rcpts[0].1.explanation.reason.as_str(), "expired");
    assert!(q.entry(&id).is_some(), "kept until its bounce is spooled");
    assert!(matches!(q.notice_done(&id, &[], t(24 * H), 0.5), Some(Effect::Remove { .. })));
    assert!(q.entry(&id).is_none());
    // the last retry is scheduled at the deadline, not after it
    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    let eff = q.complete(&job, vec![(0, soft())], t(24 * H - 10), 0.5);
    assert_eq!(names(&eff), vec!["delay", "deferred", "notified"]);
    let Effect::Record { record: StateRecord::Deferred { next_attempt, .. }, .. } = &eff[1] else { panic!() };
    assert_eq!(*next_attempt, t(24 * H));
}

#[test]
fn a_delay_warning_goes_out_once() {
    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    assert_eq!(names(&q.complete(&job, vec![(0, soft())], t(H), 0.5)), vec!["deferred"]);
    let eff = q.complete(&job, vec![(0, soft())], t(4 * H), 0.5);
    assert_eq!(names(&eff), vec!["delay", "deferred", "notified"]);
    let Effect::DelayWarning { retry_until, .. } = &eff[0] else { panic!() };
    assert_eq!(*retry_until, t(24 * H));
    assert_eq!(names(&q.complete(&job, vec![(0, soft())], t(5 * H), 0.5)), vec!["deferred"]);
}

#[test]
fn notify_and_null_sender_decide_who_hears() {
    let never = homing_spool::NOTIFY_NEVER;
    let success = homing_spool::NOTIFY_SUCCESS | homing_spool::NOTIFY_FAILURE;
    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@b.test", never), ("c@b.test", success), ("d@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    let eff = q.complete(&job, vec![(0, hard()), (1, delivered()), (2, hard())], t(10), 0.5);
    assert_eq!(names(&eff), vec!["bounce", "success", "failed", "delivered", "failed"]);
    let Effect::Bounce { rcpts, .. } = &eff[0] else { panic!() };
    assert_eq!(rcpts.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2], "NOTIFY=NEVER gets no bounce");

    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@b.test", 0)], "");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    assert_eq!(
        names(&q.complete(&job, vec![(0, hard())], t(10), 0.5)),
        vec!["failed", "remove"],
        "never to <>"
    );
}

#[test]
fn soft_failures_of_one_recipient_leave_the_others_final() {
    let mut q = Queue::new(policy(), 10, 100);
    let id = add(&mut q, &[("a@b.test", 0), ("c@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    let eff = q.complete(&job, vec![(0, delivered()), (1, soft())], t(10), 0.5);
    assert_eq!(names(&eff), vec!["delivered", "deferred"]);
    q.worker_exit("b.test");
    q.wake(t(10_000));
    q.dispatch();
    let retry = q.take("b.test").unwrap();
    assert_eq!(retry.rcpts, vec![1], "only the deferred recipient is retried");
    assert_eq!(
        names(&q.complete(&retry, vec![(1, delivered())], t(10_000), 0.5)),
        vec!["delivered", "remove"]
    );
    assert!(q.entry(&id).is_none());
}

#[test]
fn each_destination_has_its_own_connection_limit() {
    let mut q = Queue::new(policy(), 2, 100);
    for _ in 0..5 {
        add(&mut q, &[("a@slow.test", 0)], "s@s.test");
    }
    add(&mut q, &[("a@fast.test", 0)], "s@s.test");
    let d = q.dispatch();
    assert_eq!(d.iter().filter(|d| &***d == "slow.test").count(), 2, "slow.test is capped at 2");
    assert_eq!(d.iter().filter(|d| &***d == "fast.test").count(), 1, "fast.test is not held up");
    assert!(q.dispatch().is_empty(), "no more connections while both are busy");
    // a dead destination settles every waiting job at once
    let first = q.take("slow.test").unwrap();
    let rest = q.take_all("slow.test");
    assert_eq!(rest.len(), 4);
    assert_ne!(first.id, rest[0].id);
}

#[test]
fn a_sibling_job_cannot_remove_a_message_whose_bounce_is_being_spooled() {
    let mut q = Queue::new(policy(), 10, 100);
    let id = add(&mut q, &[("a@x.test", 0), ("b@y.test", 0)], "s@s.test");
    q.dispatch();
    let x = q.take("x.test").unwrap();
    let y = q.take("y.test").unwrap();
    assert_eq!(names(&q.complete(&x, vec![(0, hard())], t(10), 0.5)), vec!["bounce", "failed"]);
    // y finishes while x's bounce is still being written: no removal yet
    assert_eq!(names(&q.complete(&y, vec![(1, delivered())], t(11), 0.5)), vec!["delivered"]);
    assert!(q.entry(&id).is_some());
    assert!(matches!(q.notice_done(&id, &[], t(12), 0.5), Some(Effect::Remove { .. })));
}

#[test]
fn a_bounce_that_cannot_be_spooled_sends_its_recipients_back_to_retry() {
    let mut q = Queue::new(policy(), 10, 100);
    let id = add(&mut q, &[("a@b.test", 0)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    q.complete(&job, vec![(0, hard())], t(10), 0.5);
    q.worker_exit("b.test");
    assert!(q.notice_done(&id, &[0], t(10), 0.5).is_none(), "the message is not finished");
    assert_eq!(q.entry(&id).unwrap().rcpts[0].status, RecipientStatus::Deferred);
    assert_eq!(q.next_wake(), Some(t(310)));
    q.wake(t(310));
    assert_eq!(q.dispatch(), vec![Arc::from("b.test")]);
    assert_eq!(q.take("b.test").unwrap().rcpts, vec![0]);
}

#[test]
fn under_the_global_limit_every_destination_gets_its_turn() {
    let mut q = Queue::new(policy(), 10, 3);
    for d in ["a.test", "b.test", "c.test", "d.test", "e.test"] {
        for _ in 0..4 {
            add(&mut q, &[(&format!("u@{d}"), 0)], "s@s.test");
        }
    }
    let mut served = std::collections::HashSet::new();
    for _ in 0..10 {
        let got = q.dispatch();
        assert_eq!(got.len(), 3, "the global limit binds");
        let distinct: std::collections::HashSet<_> = got.iter().cloned().collect();
        assert_eq!(distinct.len(), 3, "one connection per destination per round: {got:?}");
        for d in got {
            served.insert(d.clone());
            q.worker_exit(&d);
        }
    }
    assert_eq!(served.len(), 5, "no destination starves");
}

#[test]
fn no_success_notice_when_the_next_hop_took_the_dsn_request() {
    let mut q = Queue::new(policy(), 10, 100);
    add(&mut q, &[("a@b.test", homing_spool::NOTIFY_SUCCESS)], "s@s.test");
    q.dispatch();
    let job = q.take("b.test").unwrap();
    let passed_on = Outcome::Delivered(Arc::new(Delivered {
        reply: "250 ok".into(),
        remote_host: "mx".into(),
        remote_ip: "127.0.0.1".into(),
        tls: None,
        at: 0,
        dsn_passed_on: true,
    }));
    assert_eq!(names(&q.complete(&job, vec![(0, passed_on)], t(10), 0.5)), vec!["delivered", "remove"]);
}
