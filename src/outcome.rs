//! What an attempt found out about one recipient, in the form the queue keeps, the spool's
//! state log stores (as JSON) and the event log and DSNs report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homing_explain::Explanation;
use serde::{Deserialize, Serialize};

/// A failed or deferred attempt, explained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempted {
    pub explanation: Explanation,
    /// Unix seconds of the attempt.
    pub at: u64,
}

/// A successful delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivered {
    /// The remote reply to the final dot, verbatim on one line.
    pub reply: String,
    pub remote_host: String,
    pub remote_ip: String,
    pub tls: Option<String>,
    pub at: u64,
    /// The next hop offered DSN, so NOTIFY went on with the message and success reports
    /// are its job now (RFC 3461 §5.2.2).
    #[serde(default)]
    pub dsn_passed_on: bool,
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Attempted {
    pub fn new(explanation: Explanation, at: SystemTime) -> Self {
        Self { explanation, at: unix(at) }
    }

    /// The final failure of a recipient that was still deferred when its lifetime ran out.
    pub fn expired(&self, received: SystemTime, now: SystemTime) -> Attempted {
        let queued_for = now.duration_since(received).unwrap_or_default();
        Attempted::new(Explanation::expired(&self.explanation, queued_for), now)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Delivered {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether a recipient's DSN NOTIFY setting (spool bit flags) asks for `what`.
/// RFC 3461 §4.1: without NOTIFY, failures and (at our discretion) delays are reported.
pub fn notify_wants(notify: u8, what: u8) -> bool {
    if notify & homing_spool::NOTIFY_NEVER != 0 {
        return false;
    }
    if notify == 0 {
        return what == homing_spool::NOTIFY_FAILURE || what == homing_spool::NOTIFY_DELAY;
    }
    notify & what != 0
}

/// The spool's NOTIFY bits for an RCPT's DSN parameters.
pub fn notify_bits(n: &homing_smtp::Notify) -> u8 {
    if n.is_never() {
        return homing_spool::NOTIFY_NEVER;
    }
    let mut b = 0;
    if n.success {
        b |= homing_spool::NOTIFY_SUCCESS;
    }
    if n.failure {
        b |= homing_spool::NOTIFY_FAILURE;
    }
    if n.delay {
        b |= homing_spool::NOTIFY_DELAY;
    }
    b
}

/// The RCPT parameter to pass on when relaying (RFC 3461 §5.2.1).
pub fn notify_from_bits(bits: u8) -> homing_smtp::Notify {
    if bits == 0 {
        return homing_smtp::Notify::default();
    }
    if bits & homing_spool::NOTIFY_NEVER != 0 {
        return homing_smtp::Notify::NEVER;
    }
    homing_smtp::Notify {
        success: bits & homing_spool::NOTIFY_SUCCESS != 0,
        failure: bits & homing_spool::NOTIFY_FAILURE != 0,
        delay: bits & homing_spool::NOTIFY_DELAY != 0,
    }
}
