//! Classification: evidence in, explanation out, using every signal in order of weight —
//! DNS, network, TLS, then the reply's text, enhanced status (RFC 3463) and basic code
//! with the stage (RFC 5321 §4.2.1).

use homing_smtp::EnhancedStatus;

use crate::evidence::Evidence;
use crate::explanation::Explanation;
use crate::rules::{Rule, Rules, Source};
use crate::taxonomy::{Actor, Reason, Scope};
use crate::template::{self, Context};

/// Longest `{detail}` quoted into a cause or fix.
const DETAIL_MAX: usize = 300;

/// Explains `evidence` with the built-in rules. Never panics; if the built-in rules could
/// not load (a bug the test suite catches), the explanation says so.
pub fn explain(evidence: &Evidence) -> Explanation {
    match Rules::builtin() {
        Ok(rules) => rules.explain(evidence),
        Err(e) => unclassified(evidence, &format!("homing's built-in failure rules did not load ({e})")),
    }
}

impl Rules {
    /// Explains `evidence` with these rules.
    pub fn explain(&self, ev: &Evidence) -> Explanation {
        match self.find(ev) {
            Some(rule) => self.apply(rule, ev),
            None => unclassified(ev, "no rule recognises this outcome"),
        }
    }

    /// The explanation `rule` gives for `ev` (the rule must be one of these rules' own).
    pub fn apply(&self, rule: &Rule, ev: &Evidence) -> Explanation {
        let reply = ev.reply.as_ref().filter(|_| rule.source == Source::Reply);
        let hard = match reply.map(|r| r.code) {
            Some(400..=499) | Some(200..=399) => false,
            _ => rule.hard,
        };
        let status = self.report_status(rule, ev, hard);
        let detail = match rule.source {
            Source::Reply => reply.map(|r| r.one_line()).unwrap_or_default(),
            Source::Dns => ev.dns.as_ref().map(|d| d.detail().to_string()).unwrap_or_default(),
            Source::Network => ev.network.clone().unwrap_or_default(),
            Source::Tls => ev.tls.clone().unwrap_or_default(),
        };
        let reply_text = reply.map(|r| r.text.as_str()).unwrap_or("");
        let ctx = Context {
            domain: clean(&ev.domain, 255),
            remote_host: ev.remote_host.as_deref().map(|h| clean(h, 255)),
            remote_ip: ev.remote_ip.as_deref().map(|h| clean(h, 64)),
            sending_ip: uses(rule, "{sending_ip}")
                .then(|| template::sending_ip(reply_text, ev.remote_ip.as_deref()))
                .flatten(),
            status: status.clone(),
            code: reply.map(|r| r.code),
            list: (uses(rule, "{list}") || uses(rule, "{lookup}"))
                .then(|| template::blocklist(reply_text, self.blocklists()))
                .flatten(),
            detail: clean(&detail, DETAIL_MAX),
            stage: ev.stage.as_str(),
        };
        Explanation {
            reason: rule.reason,
            hard,
            scope: rule.scope,
            actor: rule.actor,
            cause: sentence(template::render(&rule.cause, &ctx)),
            fix: sentence(template::render(&rule.fix, &ctx)),
            status,
            evidence: ev.clone(),
            rule: rule.id.clone(),
        }
    }

    /// The status to report: the reply's own, unless it is `x.0.0` (says nothing) or means
    /// something other than what the text told us (GoDaddy's rate limit sent as `5.1.1`);
    /// then the rule's. The class follows hard/soft so a DSN never says `5.x.x` for mail
    /// homing will still retry.
    fn report_status(&self, rule: &Rule, ev: &Evidence, hard: bool) -> String {
        let reply = ev.reply.as_ref().filter(|_| rule.source == Source::Reply);
        let own = reply.and_then(|r| r.enhanced_status());
        let agrees = |s: EnhancedStatus| {
            (s.subject, s.detail) != (0, 0)
                && (rule.status.is_none()
                    || reply
                        .and_then(|r| self.find_by_status(ev.stage, r))
                        .is_none_or(|by_code| by_code.reason == rule.reason))
        };
        let chosen = match own {
            Some(s) if agrees(s) => Some(s),
            _ => rule.status.or(own),
        };
        let class = if rule.reason == Reason::Delivered {
            2
        } else if hard {
            5
        } else {
            4
        };
        let (subject, detail) = chosen.map_or((0, 0), |s| (s.subject, s.detail));
        EnhancedStatus::new(class, subject, detail).to_string()
    }
}

/// The explanation when nothing recognises the evidence: honest about it, and hard only
/// when the server itself said the failure is permanent.
pub(crate) fn unclassified(ev: &Evidence, why: &str) -> Explanation {
    let reply = ev.reply.as_ref();
    let hard = reply.is_some_and(|r| (500..=599).contains(&r.code));
    let said = reply.map_or_else(
        || "no reply, DNS, network or TLS evidence was recorded".to_string(),
        |r| match clean(&r.one_line(), DETAIL_MAX) {
            said if said.is_empty() => "the report gave no reply or reason text".to_string(),
            said => format!("the server replied \"{said}\""),
        },
    );
    Explanation {
        reason: Reason::Undefined,
        hard,
        scope: Scope::Recipient,
        actor: Actor::SendingOperator,
        cause: format!("homing could not classify this failure: {why}; {said}."),
        fix: "Read the server's reply in the evidence; if the failure repeats, report the reply \
              to the homing project so a rule can explain it."
            .into(),
        status: if hard { "5.0.0" } else { "4.0.0" }.into(),
        evidence: ev.clone(),
        rule: String::new(),
    }
}

/// Whether the rule's cause or fix has the placeholder (so its value is worth computing).
fn uses(rule: &Rule, placeholder: &str) -> bool {
    rule.cause.contains(placeholder) || rule.fix.contains(placeholder)
}

/// A sentence starts with a capital, whatever placeholder opened it ("{server} says…").
pub(crate) fn sentence(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => s,
    }
}

/// One line, printable, at most `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let one = one.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        one
    } else {
        let mut cut: String = one.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::Stage;

    #[test]
    fn clean_strips_controls_and_truncates() {
        assert_eq!(clean("a\r\nb\tc", 10), "a b c");
        assert_eq!(clean("ééééé", 3), "ééé…");
    }

    #[test]
    fn no_evidence_is_undefined_and_soft() {
        let e = explain(&Evidence::bare(Stage::Rcpt, "example.com"));
        assert_eq!(e.reason, Reason::Undefined);
        assert!(!e.hard);
        assert_eq!(e.status, "4.0.0");
    }
}
