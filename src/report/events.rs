//! The event log: one JSON object per line, every line naming the queue id and the
//! message's Message-ID, so one message's whole journey is a grep away.
//!
//! Events: `received`, `attempt`, `delivered`, `deferred`, `bounced`, `expired`,
//! `dsn_queued`, `delay_warning`, `quarantined`, `dropped`, `suppressed`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

pub struct EventLog {
    file: Mutex<File>,
}

impl EventLog {
    pub fn open(path: &Path) -> anyhow::Result<EventLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the event log {}: {e}; check event_log in the config",
                path.display()
            )
        })?;
        Ok(EventLog { file: Mutex::new(file) })
    }

    /// Writes one event. `fields` must be a JSON object; `event`, `ts`, `queue_id` and
    /// `message_id` come first. A write error is reported once on stderr by tracing and
    /// never stops mail.
    pub fn emit(&self, event: &str, queue_id: &str, message_id: &str, fields: Value) {
        let mut obj = Map::new();
        obj.insert("ts".into(), json!(timestamp(SystemTime::now())));
        obj.insert("event".into(), json!(event));
        obj.insert("queue_id".into(), json!(queue_id));
        obj.insert("message_id".into(), json!(message_id));
        if let Value::Object(extra) = fields {
            obj.extend(extra);
        }
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        let Ok(mut f) = self.file.lock() else { return };
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "cannot write the event log");
        }
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-23T14:03:19.123Z`.
pub fn timestamp(t: SystemTime) -> String {
    let ms = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let secs = (ms / 1000) as u64;
    let (y, m, d) = homing_smtp::date::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}
