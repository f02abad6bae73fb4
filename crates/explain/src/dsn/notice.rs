//! The human-readable first part of a report (RFC 6522 §3: "a human-readable explanation"):
//! per recipient, what happened, why, and what to do.

use homing_smtp::date::rfc5322;

use super::{DsnAction, DsnRecipient, DsnReport, wire};
use crate::taxonomy::Reason;

const WIDTH: usize = 72;

/// The notice as UTF-8 text with `\n` line endings.
pub fn text(report: &DsnReport) -> String {
    let mut t = String::new();
    let host = wire::one_line(&report.reporting_mta);
    t.push_str(&format!("This is the mail system at host {host}.\n\n"));
    t.push_str(&intro(report));
    t.push_str("\n\n");
    for r in &report.recipients {
        recipient(&mut t, r);
        t.push('\n');
    }
    t.push_str(if report.return_full {
        "The original message is attached below.\n"
    } else {
        "The header section of the original message is attached below.\n"
    });
    t
}

fn intro(report: &DsnReport) -> String {
    let count = |a: DsnAction| report.recipients.iter().filter(|r| r.action == a).count();
    let (failed, delayed) = (count(DsnAction::Failed), count(DsnAction::Delayed));
    let many = |n: usize| if n == 1 { "recipient" } else { "recipients" };
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!(
            "Your message could not be delivered to {failed} {} and homing has stopped trying.",
            many(failed)
        ));
    }
    if delayed > 0 {
        parts.push(format!(
            "Your message has not been delivered to {delayed} {} yet; homing keeps trying, \
             and you do not need to send it again.",
            many(delayed)
        ));
    }
    if parts.is_empty() {
        parts.push("This is a report on the delivery of your message.".into());
    }
    wrap(&parts.join(" "), "", "")
}

fn recipient(t: &mut String, r: &DsnRecipient) {
    let addr = wire::one_line(&r.final_recipient);
    let status = r.status();
    let what = match r.action {
        // An expiry may carry a class 4 status (see `Explanation::expired`): not permanent.
        DsnAction::Failed if r.explanation.as_ref().is_some_and(|e| e.reason == Reason::Expired) => {
            format!("NOT delivered: retries ran out (status {status}).")
        }
        DsnAction::Failed => format!("NOT delivered: permanent failure (status {status})."),
        DsnAction::Delayed => match r.will_retry_until {
            Some(t) => {
                format!("not delivered yet (status {status}); homing will keep trying until {}.", rfc5322(t))
            }
            None => format!("not delivered yet (status {status}); homing will keep trying."),
        },
        DsnAction::Delivered => "delivered.".to_string(),
        DsnAction::Relayed => "relayed to a system that does not send delivery notifications.".to_string(),
        DsnAction::Expanded => "delivered to a list or alias, which passed it on.".to_string(),
    };
    t.push_str(&wrap(&format!("<{addr}>: {what}"), "", "    "));
    t.push('\n');
    if let Some(e) = &r.explanation {
        t.push_str(&wrap(&format!("Why: {}", wire::one_line(&e.cause)), "    ", "        "));
        t.push('\n');
        t.push_str(&wrap(&format!("What to do: {}", wire::one_line(&e.fix)), "    ", "        "));
        t.push('\n');
    }
    if let Some(diag) = r.diagnostic() {
        let server = r.remote_mta().unwrap_or_else(|| "The remote server".into());
        t.push_str(&format!("    {server} replied:\n        {diag}\n"));
    }
    if let Some(when) = r.last_attempt {
        t.push_str(&format!("    Last attempt: {}\n", rfc5322(when)));
    }
}

/// Wraps `text` at word boundaries to about 72 columns; the first line starts with
/// `first`, the others with `rest`.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::from(first);
    let mut col = first.chars().count();
    let mut first_word = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if !first_word && col + 1 + len > WIDTH {
            out.push('\n');
            out.push_str(rest);
            col = rest.chars().count();
        } else if !first_word {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
        first_word = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries() {
        let w = wrap(&"lorem ipsum ".repeat(20), "  ", "      ");
        assert!(w.lines().all(|l| l.chars().count() <= WIDTH));
        assert!(w.starts_with("  lorem"));
        assert!(w.lines().nth(1).is_some_and(|l| l.starts_with("      ")));
    }
}
