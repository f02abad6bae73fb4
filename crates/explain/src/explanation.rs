//! The `Explanation`: what happened, why, and what to do, for one recipient.

use std::time::Duration;

use homing_smtp::EnhancedStatus;

use crate::evidence::Evidence;
use crate::taxonomy::{Actor, Reason, Scope};

/// The interpretation of one attempt's evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Explanation {
    pub reason: Reason,
    /// True when retrying cannot help: the recipient fails now. False: homing retries.
    pub hard: bool,
    pub scope: Scope,
    pub actor: Actor,
    /// One plain sentence: why the mail did not arrive.
    pub cause: String,
    /// Who does what to fix it.
    pub fix: String,
    /// The enhanced status code (RFC 3463) to report in a DSN, e.g. `"5.1.1"`; its class
    /// agrees with `hard` (5 hard, 4 soft, 2 delivered), except after expiry (see
    /// [`Explanation::expired`]), where class 4 says that a transient condition lasted
    /// until homing gave up.
    pub status: String,
    /// What the explanation rests on.
    pub evidence: Evidence,
    /// The id of the rule that matched (`rules/*.toml`), or empty when none did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
}

impl Explanation {
    /// The final explanation when retries ran out (RFC 5321 §4.5.4.1): the last attempt's
    /// cause and fix, now hard. The status stays the last attempt's, class and all: RFC 3463
    /// §3.5 asks for "the code for the actual problem" rather than X.4.7, and its class 4
    /// means that "persistence of some temporary condition has caused abandonment" (§2),
    /// which is what expiry is; several X.4 codes (e.g. X.4.1 "no answer from host") are
    /// "useful only as a persistent transient error", so raising them to class 5 would say
    /// nothing. Only when the last status says nothing specific is it `4.4.7`, "delivery
    /// time expired". Postfix and sendmail report expiry the same way, and bounce
    /// classifiers (Sisimai) read `4.4.1` and `4.4.7` as expired. The evidence is the last
    /// attempt's.
    pub fn expired(last: &Explanation, queued_for: Duration) -> Explanation {
        let status = match last.status.parse::<EnhancedStatus>() {
            Ok(s) if (s.subject, s.detail) != (0, 0) && s.class != 2 => s,
            _ => EnhancedStatus::new(4, 4, 7),
        };
        let last_cause = match last.reason {
            // Expiring twice must not nest the wording.
            Reason::Expired => last
                .cause
                .split_once("; the last attempt failed: ")
                .map_or(last.cause.as_str(), |(_, c)| c)
                .to_string(),
            _ => last.cause.clone(),
        };
        Explanation {
            reason: Reason::Expired,
            hard: true,
            scope: last.scope,
            actor: last.actor,
            cause: format!(
                "homing retried for {} without delivering it and gave up; the last attempt failed: {}",
                human_duration(queued_for),
                last_cause
            ),
            fix: match without_homing_clauses(&last.fix) {
                rest if rest.is_empty() => {
                    "Fix the cause above (or have the receiving side fix it), then resend the message.".into()
                }
                rest => rest,
            },
            status: status.to_string(),
            evidence: last.evidence.clone(),
            rule: last.rule.clone(),
        }
    }

    /// One line for logs: `userunknown: <cause> Fix: <fix>`.
    pub fn summary(&self) -> String {
        let line = format!("{}: {} Fix: {}", self.reason, self.cause, self.fix);
        line.split(['\r', '\n']).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// Whether the recipient address itself is dead and belongs on the suppression list.
    /// Provider blocks, throttles and full mailboxes never qualify (docs/FAILURES.md).
    pub fn suppresses_recipient(&self) -> bool {
        self.hard && self.reason.kills_address()
    }
}

/// A rule's text without the clauses about what homing itself will do next ("homing
/// retries by itself", "homing suppresses it"): for a report from another server, and for
/// a final failure, where homing has stopped retrying. Empty when nothing else is left.
pub(crate) fn without_homing_clauses(text: &str) -> String {
    let mut kept: Vec<String> = Vec::new();
    for sentence in text.split_inclusive(". ") {
        let clauses: Vec<&str> =
            sentence.split("; ").filter(|c| !c.to_ascii_lowercase().contains("homing")).collect();
        if !clauses.is_empty() {
            kept.push(clauses.join("; "));
        }
    }
    let joined = kept.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        return String::new();
    }
    let mut out = crate::classify::sentence(joined);
    if !out.ends_with(['.', '!', '?', ')']) {
        out = out.trim_end_matches([',', ';', ' ']).to_string() + ".";
    }
    out
}

/// "5 days", "2 hours 30 minutes", "45 seconds".
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let units = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, name) in units {
        let n = rest / size;
        if n > 0 && parts.len() < 2 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            rest -= n * size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() { "less than a second".into() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(human_duration(Duration::from_secs(9_000)), "2 hours 30 minutes");
        assert_eq!(human_duration(Duration::from_secs(86_400 + 5)), "1 day");
        assert_eq!(human_duration(Duration::from_millis(10)), "less than a second");
    }
}
