//! What homing tells people: the event log for operators and DSNs for senders.

pub mod events;
pub mod notice;

use std::sync::Arc;

use homing_spool::{Envelope, MessageId, StateRecord};
use serde_json::{Value, json};

use crate::outcome::unix;
pub use events::EventLog;

pub struct Reporter {
    pub events: EventLog,
    /// Our host name, for `Reporting-MTA` and the DSN's From address.
    pub hostname: String,
    /// How long a message is retried (`queue.max_lifetime`), to say when homing gives up.
    pub lifetime: std::time::Duration,
}

impl Reporter {
    pub fn new(events: EventLog, hostname: String, lifetime: std::time::Duration) -> Arc<Reporter> {
        Arc::new(Reporter { events, hostname, lifetime })
    }

    /// Logs a recipient's new state as an event: `delivered`, `deferred`, `bounced`,
    /// `expired` or `delay_warning`, with the explanation's reason, cause and fix.
    pub fn record_event(&self, id: &MessageId, env: &Envelope, record: &StateRecord) {
        let rcpt_addr =
            |i: u32| env.recipients.get(i as usize).map(|r| r.address.clone()).unwrap_or_default();
        let detail = |d: &str| serde_json::from_str::<Value>(d).unwrap_or(Value::Null);
        let (event, fields) = match record {
            StateRecord::Delivered { rcpt, detail: d, .. } => {
                ("delivered", json!({ "rcpt": rcpt_addr(*rcpt), "result": detail(d) }))
            }
            StateRecord::Deferred { rcpt, attempts, next_attempt, detail: d, .. } => {
                let gives_up = env.received_at + self.lifetime;
                (
                    "deferred",
                    json!({
                        "rcpt": rcpt_addr(*rcpt),
                        "attempts": attempts,
                        "next_attempt": events::timestamp(*next_attempt),
                        "next_attempt_unix": unix(*next_attempt),
                        "gives_up_at": events::timestamp(gives_up),
                        "retry": format!(
                            "homing retries at {} and gives up at {} if it still fails",
                            events::timestamp(*next_attempt),
                            events::timestamp(gives_up)
                        ),
                        "result": detail(d),
                    }),
                )
            }
            StateRecord::Failed { rcpt, detail: d, .. } => {
                let v = detail(d);
                let expired = v.pointer("/explanation/reason").and_then(Value::as_str) == Some("expired");
                (
                    if expired { "expired" } else { "bounced" },
                    json!({ "rcpt": rcpt_addr(*rcpt), "result": v }),
                )
            }
            StateRecord::DelayNotified { rcpt, .. } => ("delay_warning", json!({ "rcpt": rcpt_addr(*rcpt) })),
            StateRecord::BounceQueued { rcpt, .. } => ("dsn_queued", json!({ "rcpt": rcpt_addr(*rcpt) })),
        };
        self.events.emit(event, id.as_str(), env.message_id.as_deref().unwrap_or(""), fields);
    }
}
