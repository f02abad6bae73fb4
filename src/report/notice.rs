//! Delivery status notifications (RFC 3464) as new messages for the spool: failures,
//! delays and (on request) successes. Never to the null sender (RFC 5321 §4.5.5), and a
//! DSN itself is sent from the null sender so it can never cause another one.

use std::sync::Arc;
use std::time::SystemTime;

use homing_explain::dsn::{self, DsnAction, DsnRecipient, DsnReport};
use homing_spool::{Envelope, MessageId, MessageKind, NewMessage, RecipientRecord, Source, Spool};
use serde_json::json;

use super::Reporter;
use crate::outcome::{Attempted, Delivered, from_unix};

impl Reporter {
    pub fn bounce(
        &self,
        spool: &Spool,
        id: &MessageId,
        env: &Envelope,
        rcpts: &[(u32, Arc<Attempted>)],
    ) -> Option<NewMessage> {
        let list = rcpts.iter().map(|(i, a)| self.failed_rcpt(env, *i, a, DsnAction::Failed, None)).collect();
        self.notice(spool, id, env, list, "bounce")
    }

    pub fn delay_warning(
        &self,
        spool: &Spool,
        id: &MessageId,
        env: &Envelope,
        rcpts: &[(u32, Arc<Attempted>)],
        retry_until: SystemTime,
    ) -> Option<NewMessage> {
        let list = rcpts
            .iter()
            .map(|(i, a)| self.failed_rcpt(env, *i, a, DsnAction::Delayed, Some(retry_until)))
            .collect();
        self.notice(spool, id, env, list, "delay")
    }

    pub fn success(
        &self,
        spool: &Spool,
        id: &MessageId,
        env: &Envelope,
        rcpts: &[(u32, Arc<Delivered>)],
    ) -> Option<NewMessage> {
        let list = rcpts
            .iter()
            .filter_map(|(i, d)| {
                let r = env.recipients.get(*i as usize)?;
                Some(DsnRecipient {
                    final_recipient: r.address.clone(),
                    original_recipient: r.orcpt.clone(),
                    // homing hands mail on to another server; "delivered" would claim
                    // final delivery it cannot see (RFC 3464 §2.3.3).
                    action: DsnAction::Relayed,
                    status: "2.0.0".into(),
                    remote_mta: Some(d.remote_host.clone()),
                    diagnostic: Some(d.reply.clone()),
                    last_attempt: Some(from_unix(d.at)),
                    will_retry_until: None,
                    explanation: None,
                })
            })
            .collect();
        self.notice(spool, id, env, list, "success")
    }

    fn failed_rcpt(
        &self,
        env: &Envelope,
        i: u32,
        a: &Attempted,
        action: DsnAction,
        retry_until: Option<SystemTime>,
    ) -> DsnRecipient {
        let r = env.recipients.get(i as usize);
        let x = &a.explanation;
        DsnRecipient {
            final_recipient: r.map(|r| r.address.clone()).unwrap_or_default(),
            original_recipient: r.and_then(|r| r.orcpt.clone()),
            action,
            status: x.status.clone(),
            remote_mta: x.evidence.remote_host.clone(),
            diagnostic: x.evidence.reply.as_ref().map(|r| r.one_line()),
            last_attempt: Some(from_unix(a.at)),
            will_retry_until: retry_until,
            explanation: Some(x.clone()),
        }
    }

    /// Builds the DSN and returns it as a message ready to store, or `None` when there is
    /// nobody to tell (null sender, or a DSN about a DSN).
    fn notice(
        &self,
        spool: &Spool,
        id: &MessageId,
        env: &Envelope,
        rcpts: Vec<DsnRecipient>,
        kind: &str,
    ) -> Option<NewMessage> {
        if env.return_path.is_empty() || env.kind != MessageKind::Normal || rcpts.is_empty() {
            return None;
        }
        let original = match spool.read_body(id) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(queue_id = %id, error = %e, "original message unreadable; the DSN carries no copy of it");
                Vec::new()
            }
        };
        let now = SystemTime::now();
        let new_id = spool.new_id();
        let report = DsnReport {
            reporting_mta: self.hostname.clone(),
            postmaster: format!("MAILER-DAEMON@{}", self.hostname),
            to: env.return_path.clone(),
            date: now,
            message_id: format!("<{}@{}>", new_id, self.hostname),
            envid: env.envid.clone(),
            queue_id: id.to_string(),
            arrival_date: env.received_at,
            received_from_mta: Some(format!("dns; {}", env.source.helo)),
            return_full: env.ret_full == Some(true),
            original: &original,
            recipients: rcpts,
        };
        let body = dsn::build(&report);
        let envelope = Envelope {
            received_at: now,
            return_path: String::new(),
            envid: None,
            ret_full: None,
            body_8bit: body.iter().any(|b| *b >= 0x80),
            smtputf8: false,
            source: Source { peer_ip: "local".into(), helo: self.hostname.clone(), tls: None, auth: None },
            recipients: vec![RecipientRecord {
                address: env.return_path.clone(),
                orcpt: None,
                notify: homing_spool::NOTIFY_NEVER,
            }],
            kind: MessageKind::Dsn,
            message_id: Some(report.message_id.clone()),
        };
        self.events.emit(
            "dsn_queued",
            id.as_str(),
            env.message_id.as_deref().unwrap_or(""),
            json!({ "kind": kind, "dsn_queue_id": new_id.as_str(), "to": env.return_path }),
        );
        Some(NewMessage { id: new_id, envelope, body })
    }
}
