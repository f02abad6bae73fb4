//! Reading bounces: any delivery failure report from any server, turned into one
//! [`Finding`] per failed recipient with its [`Explanation`].
//!
//! - [`mime`]: the message structure (RFC 5322, MIME).
//! - [`fields`]: RFC 3464 delivery-status and RFC 5965 feedback-report fields.
//! - [`prose`]: the human-readable texts servers send instead of, or beside, a report.
//!
//! What a report says in its fields wins over what its prose says; prose fills in what the
//! fields leave out (many servers put only `5.0.0` in `Status:` and the reason in words).

pub mod fields;
mod lists;
pub mod mime;
pub mod prose;
mod ses;
mod signals;

use serde::Serialize;

use crate::evidence::{Evidence, ReplyEvidence};
use crate::explanation::Explanation;
use crate::taxonomy::{Actor, Reason, Scope, Stage};
use mime::{Headers, Part};

pub use signals::{pseudo_status, remote_host, reply_code, stage_of, status_in};

/// What kind of message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A delivery failure (or delay) report.
    Bounce,
    /// An abuse / feedback report (RFC 5965 ARF): the recipient complained.
    Feedback,
    /// An automatic reply (RFC 3834), such as a vacation message: not a failure.
    AutoReply,
    /// Nothing in it reports a failed delivery.
    NotABounce,
}

/// One failed recipient as the report gave it, before interpretation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    pub recipient: String,
    /// RFC 3464 `Action` (`failed`, `delayed`), lowercased.
    pub action: Option<String>,
    /// The enhanced status code the report gave, `d.d.d`.
    pub status: Option<String>,
    /// The diagnostic text: the `Diagnostic-Code` or the prose about this recipient.
    pub diagnostic: String,
    /// More prose from the same report, used when the diagnostic says too little.
    pub context: String,
    pub remote_mta: Option<String>,
    /// The `Diagnostic-Code` type (RFC 3464 §2.3.6), lowercased: `smtp`, `x-unix`, ….
    pub diagnostic_type: String,
    /// The notice's own words name this recipient (not only its report fields or the
    /// returned message's header).
    pub in_notice: bool,
    /// RFC 5965 `Feedback-Type`, for complaints.
    pub feedback_type: Option<String>,
}

/// A report as read: its kind and failed recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: Kind,
    pub failures: Vec<Failure>,
    pub reporting_mta: Option<String>,
    pub subject: String,
    pub from: String,
    /// The report comes from a filtering gateway (see [`FILTER_GATEWAYS`]).
    pub filter_gateway: bool,
}

/// Header signatures of filtering gateways that send their own bounces (McAfee Email
/// Gateway, MXLogic, m-FILTER, MailFoundry, ActiveHunter, Mail2000). A recipient they refuse was
/// refused by the gateway's filter or directory policy in front of the mailbox; so was one
/// refused for a reason the notice does not give.
const FILTER_GATEWAYS: &[&str] =
    &["x-nai-header", "mxlogic.net", "m-filter", "mailfoundry", "x-ahmailid", "mail2000 esmtp"];

/// A complaint forwarded without an RFC 5965 report (Hotmail's "complaint about message
/// from …"): the subject says so and the original is attached.
fn is_complaint(subject: &str, parts: &[Part]) -> bool {
    let s = subject.to_ascii_lowercase();
    (s.contains("complaint about message") || s.contains("abuse report") || s.contains("spam report"))
        && parts.iter().any(|p| p.in_original)
}

/// A failed recipient, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub recipient: String,
    pub reason: Reason,
    /// The enhanced status: the report's own when it gave one, else one found in its text,
    /// else the reason's placeholder code (`pseudo_status`).
    pub status: String,
    #[serde(rename = "replycode")]
    pub reply_code: Option<u16>,
    #[serde(rename = "rhost")]
    pub remote_host: Option<String>,
    pub diagnostic: String,
    pub hard: bool,
    pub scope: Scope,
    pub actor: Actor,
    pub cause: String,
    pub fix: String,
    /// The rule that classified it (`rules/*.toml`), empty when none did.
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
}

/// Reads a bounce. Never fails: garbage is a report of kind [`Kind::NotABounce`].
pub fn read(raw: &[u8]) -> Report {
    let (headers, parts) = mime::leaves(raw);
    let subject = headers.text("subject").unwrap_or_default();
    let from = headers.text("from").unwrap_or_default();
    let mut report = Report {
        kind: Kind::NotABounce,
        failures: Vec::new(),
        reporting_mta: None,
        subject,
        from,
        filter_gateway: false,
    };

    if let Some(fb) = feedback(&parts) {
        report.kind = Kind::Feedback;
        report.failures = fb;
        return report;
    }

    if let Some(ses) = parts
        .iter()
        .filter(|p| !p.in_original && p.content_type.mime == "text/plain")
        .find_map(|p| ses::read(&p.text))
        && !ses.failures.is_empty()
    {
        report.kind = if ses.complaint { Kind::Feedback } else { Kind::Bounce };
        report.failures = ses.failures;
        report.failures.truncate(MAX_FAILURES);
        return report;
    }

    let ignore = own_addresses(&headers);
    let note = notification_text(&parts);
    let mentions = prose::mentions(&note, &ignore);
    let (failures, reporting_mta) = delivery_status(&parts);
    report.reporting_mta = reporting_mta;
    let reported = !failures.is_empty();

    if !reported && let Some(refused) = lists::read(&headers, &report.subject, &note) {
        report.kind = Kind::Bounce;
        report.failures = vec![refused];
        return report;
    }
    let bounce_like = looks_like_bounce(&headers, &note);
    // Prose names failed addresses only in a message that presents itself as a failure
    // notice; anywhere else, an address on a line of its own is just an address.
    let mut failures: Vec<Failure> = if reported {
        failures
    } else if bounce_like {
        mentions
            .iter()
            .map(|m| Failure {
                recipient: m.recipient.clone(),
                diagnostic: m.text.clone(),
                ..Failure::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    if !reported && !bounce_like && is_unsubscribe_request(&headers, &report.subject) {
        // The recipient opted out through the List-Unsubscribe address (RFC 2369 §3.2):
        // a complaint in all but name, and the strongest reason never to write again.
        report.kind = Kind::Feedback;
        let who = prose::all_addresses(&report.from).into_iter().next().unwrap_or_default();
        report.failures = vec![Failure {
            recipient: who,
            diagnostic: report.subject.clone(),
            feedback_type: Some("unsubscribe".into()),
            ..Failure::default()
        }];
        return report;
    }
    if !reported && !bounce_like && is_auto_reply(&headers, &report.subject) {
        report.kind = Kind::AutoReply;
        let who = prose::all_addresses(&report.from).into_iter().next().unwrap_or_default();
        report.failures =
            vec![Failure { recipient: who, diagnostic: report.subject.clone(), ..Failure::default() }];
        return report;
    }
    if failures.is_empty() && is_complaint(&report.subject, &parts) {
        report.kind = Kind::Feedback;
        let to = original_recipients(&parts);
        report.failures = to
            .into_iter()
            .take(1)
            .map(|r| Failure { recipient: r, feedback_type: Some("abuse".into()), ..Failure::default() })
            .collect();
        return report;
    }
    report.filter_gateway = headers.0.iter().any(|f| {
        let (name, value) = (f.name.to_ascii_lowercase(), f.value.to_ascii_lowercase());
        FILTER_GATEWAYS.iter().any(|sig| name.contains(sig) || value.contains(sig))
            // au EZweb's spam filter marks the notices of mail it refused for a recipient.
            || name == "x-spasign" && value.trim() == "ng"
    });
    if failures.is_empty() && bounce_like {
        let mut rcpts: Vec<String> =
            headers.all("x-failed-recipients").flat_map(prose::all_addresses).collect();
        if rcpts.is_empty() {
            rcpts = original_recipients(&parts);
        }
        if rcpts.is_empty() {
            rcpts = inline_original_recipients(&parts, &ignore);
        }
        rcpts.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        failures = rcpts.into_iter().map(|r| Failure { recipient: r, ..Failure::default() }).collect();
    }
    failures.truncate(MAX_FAILURES);
    let single = failures.len() == 1;
    let by_address: std::collections::HashMap<String, &prose::Mention> =
        mentions.iter().rev().map(|m| (m.recipient.to_ascii_lowercase(), m)).collect();
    let note = clip(&note, CONTEXT_MAX);
    for f in &mut failures {
        if let Some(m) = by_address.get(&f.recipient.to_ascii_lowercase()) {
            f.in_notice = true;
            if f.diagnostic.is_empty() {
                f.diagnostic = m.text.clone();
            } else if !m.text.is_empty() && m.text != f.diagnostic {
                f.context = m.text.clone();
            }
        }
        if single || f.diagnostic.is_empty() {
            if !f.context.is_empty() {
                f.context.push('\n');
            }
            f.context.push_str(note);
        }
        f.diagnostic = clip(&f.diagnostic, CONTEXT_MAX).to_string();
        f.context = clip(&f.context, 2 * CONTEXT_MAX).to_string();
    }
    if !failures.is_empty() {
        report.kind = Kind::Bounce;
        report.failures = failures;
    }
    report
}

/// Most failed recipients read from one report; a report naming more is cut there.
const MAX_FAILURES: usize = 1000;
/// Most text about one failure that classification reads (a report's prose is shared by
/// all its recipients; reading all of it for each would be quadratic).
const CONTEXT_MAX: usize = 8 * 1024;

/// `s` cut to at most `max` bytes, at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The bounce's own addresses (its `From`, `To`, `Return-Path`): never failed recipients.
fn own_addresses(headers: &Headers) -> Vec<String> {
    ["from", "to", "return-path", "reply-to", "sender"]
        .iter()
        .flat_map(|h| headers.all(h).flat_map(prose::all_addresses).collect::<Vec<_>>())
        .collect()
}

/// The human-readable notification: text parts outside the attached original, HTML
/// reduced to text, cut before any inline copy of the original.
fn notification_text(parts: &[Part]) -> String {
    let mut out = String::new();
    let plain_exists = parts
        .iter()
        .any(|p| !p.in_original && p.content_type.mime == "text/plain" && !p.text.trim().is_empty());
    for p in parts.iter().filter(|p| !p.in_original) {
        let text = match p.content_type.mime.as_str() {
            "text/plain" | "text/enriched" => p.text.clone(),
            "text/html" if !plain_exists => strip_html(&p.text),
            _ => continue,
        };
        out.push_str(prose::notification(&text));
        out.push('\n');
    }
    out
}

fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Failures from RFC 3464 `message/delivery-status` parts (or text parts that carry the
/// same fields inline, as some servers send them), and the reporting MTA.
fn delivery_status(parts: &[Part]) -> (Vec<Failure>, Option<String>) {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut reporting = None;
    for p in parts.iter().filter(|p| !p.in_original) {
        let is_report = matches!(
            p.content_type.mime.as_str(),
            "message/delivery-status" | "message/global-delivery-status" | "text/delivery-status"
        );
        let inline = p.content_type.mime == "text/plain"
            && p.text.lines().any(|l| starts_with_ci(l, "final-recipient:"))
            && p.text.lines().any(|l| starts_with_ci(l, "status:") || starts_with_ci(l, "action:"));
        if !is_report && !inline {
            continue;
        }
        for g in fields::groups(&p.text) {
            if let Some(r) = g.get("reporting-mta") {
                reporting.get_or_insert_with(|| fields::typed_text(r));
            }
            let Some(recipient) = g
                .get("final-recipient")
                .or_else(|| g.get("original-recipient"))
                .or_else(|| g.get("x-actual-recipient"))
                .and_then(fields::typed_address)
            else {
                continue;
            };
            let action = g.get("action").map(|a| a.trim().to_ascii_lowercase());
            let status = g.get("status").and_then(status_in);
            let succeeded = matches!(action.as_deref(), Some("delivered" | "relayed" | "expanded"))
                || status.as_deref().is_some_and(|s| s.starts_with('2'));
            if succeeded {
                continue;
            }
            let diagnostic = g.get("diagnostic-code").map(fields::typed_text).unwrap_or_default();
            let diagnostic_type = g.get("diagnostic-code").map(fields::value_type).unwrap_or_default();
            let remote_mta = g.get("remote-mta").map(fields::typed_text).filter(|s| !s.is_empty());
            if !seen.insert(recipient.to_ascii_lowercase()) {
                continue;
            }
            out.push(Failure {
                recipient,
                action,
                status,
                diagnostic,
                diagnostic_type,
                remote_mta,
                ..Failure::default()
            });
            if out.len() >= MAX_FAILURES {
                return (out, reporting);
            }
        }
    }
    (out, reporting)
}

fn starts_with_ci(line: &str, prefix: &str) -> bool {
    line.len() >= prefix.len() && line.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Complaints: RFC 5965 feedback reports, one failure per complained-about recipient.
fn feedback(parts: &[Part]) -> Option<Vec<Failure>> {
    let report = parts.iter().find(|p| !p.in_original && p.content_type.mime == "message/feedback-report")?;
    let h = mime::parse_headers(report.text.as_bytes());
    let kind = h.get("feedback-type").map(|s| s.trim().to_ascii_lowercase());
    let mut rcpts: Vec<String> = h.all("original-rcpt-to").flat_map(prose::all_addresses).collect();
    if rcpts.is_empty() {
        rcpts = h.all("removal-recipient").flat_map(prose::all_addresses).collect();
    }
    if rcpts.is_empty() {
        rcpts = original_recipients(parts);
    }
    if rcpts.is_empty() {
        rcpts.push(String::new());
    }
    rcpts.truncate(MAX_FAILURES);
    let diagnostic = clip(notification_text(parts).trim(), CONTEXT_MAX).to_string();
    Some(
        rcpts
            .into_iter()
            .map(|r| Failure {
                recipient: r,
                feedback_type: kind.clone(),
                diagnostic: diagnostic.clone(),
                ..Failure::default()
            })
            .collect(),
    )
}

/// The `To` addresses of the attached original message.
fn original_recipients(parts: &[Part]) -> Vec<String> {
    parts
        .iter()
        .filter(|p| p.in_original && p.content_type.mime == "text/rfc822-headers")
        .find_map(|p| {
            let h = mime::parse_headers(p.text.as_bytes());
            let to: Vec<String> = h.all("to").flat_map(prose::all_addresses).collect();
            (!to.is_empty()).then_some(to)
        })
        .unwrap_or_default()
}

/// The `To` of a copy of the original quoted inline after the notification (servers that
/// attach no `message/rfc822` part).
fn inline_original_recipients(parts: &[Part], ignore: &[String]) -> Vec<String> {
    parts
        .iter()
        .filter(|p| !p.in_original && p.content_type.mime.starts_with("text/"))
        .flat_map(|p| p.text.lines())
        .filter(|l| starts_with_ci(l, "to:"))
        .flat_map(prose::all_addresses)
        .filter(|a| !ignore.iter().any(|i| i.eq_ignore_ascii_case(a)))
        .take(1)
        .collect()
}

/// Whether the message presents itself as a failure notice: by its sender, its subject
/// (in the languages real servers use) or the words of its notification.
fn looks_like_bounce(headers: &Headers, note: &str) -> bool {
    const SENDERS: &[&str] = &[
        "mailer-daemon",
        "postmaster",
        "post_master",
        "mail delivery",
        "mailer daemon",
        "mail administrator",
    ];
    const SUBJECTS: &[&str] = &[
        "undeliver",
        "delivery status notification",
        "delivery failure",
        "failure notice",
        "returned mail",
        "mail delivery failed",
        "delivery failed",
        "non-delivery",
        "nondeliverable",
        "not delivered",
        "could not be delivered",
        "rejected",
        "delivery problem",
        "warning: could not send",
        "unzustellbar",
        "nicht zustellbar",
        "non remis",
        "non recapitabile",
        "onbestelbaar",
        "no entregado",
        "不達",
        "エラー",
        "配送",
        "undelivered",
        "delivery notification",
        "returned to sender",
    ];
    const PHRASES: &[&str] = &[
        "could not be delivered",
        "couldn't be delivered",
        "was not delivered",
        "undeliverable",
        "permanent error",
        "permanent fatal error",
        "delivery has failed",
        "delivery failed",
        "error message below",
        "the following addresses had",
        "unable to deliver",
        "failed to deliver",
        "not be delivered to",
        "message you sent could not",
    ];
    let from = headers.text("from").unwrap_or_default().to_lowercase();
    let subject = headers.text("subject").unwrap_or_default().to_lowercase();
    let note = note.to_lowercase();
    SENDERS.iter().any(|d| from.contains(d))
        || SUBJECTS.iter().any(|s| subject.contains(s))
        || PHRASES.iter().any(|p| note.contains(p))
}

/// A request to unsubscribe sent by a mail client to a list's `List-Unsubscribe` mailto
/// address (RFC 2369 §3.2; RFC 8058 §3.2 names "unsubscribe" as the conventional
/// subject); Apple Mail marks its own with `X-Apple-Unsubscribe`.
fn is_unsubscribe_request(headers: &Headers, subject: &str) -> bool {
    subject.trim().eq_ignore_ascii_case("unsubscribe")
        || headers.get("x-apple-unsubscribe").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// RFC 3834 automatic replies, and the vacation responders that predate it.
fn is_auto_reply(headers: &Headers, subject: &str) -> bool {
    let auto = headers.get("auto-submitted").map(|v| v.to_ascii_lowercase());
    if auto.as_deref().is_some_and(|v| v.starts_with("auto-replied")) {
        return true;
    }
    if headers.get("x-autoreply").is_some()
        || headers.get("x-autorespond").is_some()
        || headers.get("x-autoresponder").is_some()
        || headers.get("x-mail-autoreply").is_some()
    {
        return true;
    }
    let p = headers.get("precedence").map(|v| v.to_ascii_lowercase());
    if p.as_deref().is_some_and(|p| p.contains("auto_reply") || p.contains("auto-reply")) {
        return true;
    }
    let s = subject.to_ascii_lowercase();
    [
        "auto:",
        "automatic reply",
        "autoreply",
        "auto-reply",
        "auto reply",
        "out of office",
        "out of the office",
        "vacation",
        "abwesenheit",
        "absence",
        "réponse automatique",
    ]
    .iter()
    .any(|k| s.contains(k))
}

/// Explains every failed recipient of a report.
pub fn explain_report(report: &Report) -> Vec<Finding> {
    report.failures.iter().map(|f| explain_failure(report, f)).collect()
}

/// Explains one failed recipient: the report's fields and text become [`Evidence`] for the
/// rules; complaints and auto-replies are what they are.
pub fn explain_failure(report: &Report, f: &Failure) -> Finding {
    let reply_code = reply_code(&f.diagnostic).or_else(|| reply_code(&f.context));
    // The status the failure's own text gives; a lone recipient owns the whole notice's.
    let text_status = status_in(&f.diagnostic)
        .or_else(|| (report.failures.len() == 1).then(|| status_in(&f.context)).flatten());
    let domain = f.recipient.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
    let stage = stage_of(&f.diagnostic).or_else(|| stage_of(&f.context)).unwrap_or(Stage::Rcpt);
    let status_seen = effective_status(f.status.as_deref(), text_status.as_deref());
    let mut ev = Evidence::bare(stage, domain);
    let remote = f.remote_mta.clone().or_else(|| remote_host(&f.diagnostic));
    ev.remote_host = remote.clone();
    ev.reply = Some(ReplyEvidence {
        code: reply_code.unwrap_or(0),
        status: status_seen.map(str::to_string),
        text: f.diagnostic.clone(),
    });
    let mut x = match crate::Rules::builtin() {
        Ok(rules) => classify(rules, &ev, f),
        Err(e) => {
            crate::classify::unclassified(&ev, &format!("homing's built-in failure rules did not load ({e})"))
        }
    };
    let delayed = f.action.as_deref() == Some("delayed");
    let all_text = format!("{}\n{}", f.diagnostic, f.context).to_ascii_lowercase();
    let reason = match report.kind {
        Kind::Feedback => Reason::Feedback,
        Kind::AutoReply => Reason::Vacation,
        _ if report.filter_gateway
            && (x.reason == Reason::UserUnknown && !names_address(status_seen)
                || x.reason == Reason::Undefined) =>
        {
            Reason::Filtered
        }
        _ => match refine(x.reason, &x.rule, stage, status_seen, &all_text) {
            // An `X-Unix` diagnostic is a local delivery program's result (Postfix pipe and
            // local, Sendmail's prog mailer): unless its words name a cause, it failed.
            Reason::Expired
            | Reason::Undefined
            | Reason::OnHold
            | Reason::SystemError
            | Reason::NetworkError
                if f.diagnostic_type == "x-unix" =>
            {
                Reason::MailerError
            }
            // The server said something about this recipient, but nothing any rule knows:
            // held for a person to read, unlike a notice with no words at all.
            Reason::Undefined if f.in_notice || !f.diagnostic.trim().is_empty() => Reason::OnHold,
            other => other,
        },
    };
    let retrying = delayed || GAVE_UP[..RETRYING].iter().any(|p| all_text.contains(p));
    if reason == Reason::Expired && x.reason != Reason::Expired && !retrying {
        // Gave up after retrying: the last attempt's cause is still the real trouble.
        let mut last = x.cause.trim_end_matches('.').to_string();
        if let Some(first) = last.chars().next().filter(|c| c.is_uppercase())
            && !last.chars().nth(1).is_some_and(char::is_uppercase)
        {
            last.replace_range(..first.len_utf8(), &first.to_lowercase().to_string());
        }
        x.cause = format!(
            "The reporting server stopped retrying and returned the message; the last attempt failed: {last}."
        );
        x.reason = Reason::Expired;
    } else if reason != x.reason {
        // The cause and fix must tell the same story as the refined reason.
        let id = match reason {
            Reason::Expired => "still-retrying",
            other => rule_for(other, &all_text),
        };
        if let Some(rule) = crate::Rules::builtin().ok().and_then(|r| r.by_id(id).map(|rule| (r, rule))) {
            let (rules, rule) = rule;
            // Quote the failure's own words when it has some, not the whole notice.
            let quoted = if f.diagnostic.trim().is_empty() { &x.evidence } else { &ev };
            x = rules.apply(rule, quoted);
        } else if reason == Reason::OnHold {
            x.cause = "The report says delivery to this recipient failed, but its words name no \
                       cause that homing recognises."
                .into();
            x.fix = "Read the report's words (quoted here); if they do not say why, ask the \
                     administrator of the recipient's domain what refused the message."
                .into();
        }
    }
    let hard = match report.kind {
        Kind::Feedback | Kind::AutoReply => false,
        _ if retrying => false,
        _ if reason == Reason::Expired => true,
        _ => x.hard,
    };
    let status = match report.kind {
        Kind::Feedback | Kind::AutoReply => String::new(),
        _ => match status_seen {
            Some(s) => s.to_string(),
            None => pseudo_status(reason, !(retrying || reply_code.is_some_and(|c| c < 500))),
        },
    };
    Finding {
        recipient: f.recipient.clone(),
        reason,
        status,
        reply_code,
        remote_host: remote,
        diagnostic: crate::classify::clean(
            if f.diagnostic.is_empty() { &f.context } else { &f.diagnostic },
            DIAGNOSTIC_MAX,
        ),
        hard,
        scope: x.scope,
        actor: x.actor,
        cause: match report.kind {
            Kind::Feedback if f.feedback_type.as_deref() == Some("unsubscribe") => {
                "The recipient asked to be unsubscribed, by mail to the list's unsubscribe address.".into()
            }
            Kind::Feedback => format!(
                "The recipient (or their provider) reported the message as {}.",
                f.feedback_type.as_deref().unwrap_or("abuse")
            ),
            Kind::AutoReply => {
                "This is an automatic reply (such as a vacation notice), not a failure.".into()
            }
            _ => or_whole(crate::explanation::without_homing_clauses(&x.cause), &x.cause),
        },
        fix: match report.kind {
            Kind::Feedback if f.feedback_type.as_deref() == Some("unsubscribe") => {
                "Remove the recipient from the list now (Gmail and Yahoo require it within two days) \
                 and send them nothing more; homing why --suppress adds them to the suppression list."
                    .into()
            }
            Kind::Feedback => {
                "Stop sending to this recipient (homing why --suppress lists it), and check that \
                               the mail was wanted: consent and a working unsubscribe link."
                    .into()
            }
            Kind::AutoReply => "Nothing to fix: the message was delivered.".into(),
            _ => or_whole(crate::explanation::without_homing_clauses(&x.fix), &x.fix),
        },
        feedback_type: f.feedback_type.clone(),
        rule: x.rule.clone(),
    }
}

/// Classifies one failure: the diagnostic first; when no rule recognises its words, the
/// diagnostic with the rest of the report's prose; then the same words as a network error
/// (connection and DNS failures reported in prose). A rule that recognised words beats one
/// that saw only codes; only the chosen rule is applied.
fn classify(rules: &crate::Rules, ev: &Evidence, f: &Failure) -> Explanation {
    let first = rules.find(ev);
    // Words about timing ("will be retried", "expired") say when, not why: a specific cause
    // elsewhere in the report (a full mailbox, an unknown user) outranks them.
    let timing = first.is_some_and(|r| r.reason == Reason::Expired);
    if first.is_some_and(crate::rules::Rule::looks_at_text) && (!timing || f.context.is_empty())
        || f.context.is_empty() && f.diagnostic.is_empty()
    {
        return apply_or_unclassified(rules, first, ev);
    }
    let both = format!("{}\n{}", f.diagnostic, f.context);
    let mut wider = ev.clone();
    if let Some(r) = wider.reply.as_mut() {
        r.text = both.clone();
    }
    let specific = |r: &&crate::rules::Rule| {
        r.looks_at_text()
            && !matches!(
                r.reason,
                Reason::Expired
                    | Reason::SystemError
                    | Reason::NetworkError
                    | Reason::Undefined
                    | Reason::OnHold
            )
    };
    if timing {
        return match rules.find(&wider).filter(specific) {
            Some(rule) => rules.apply(rule, &wider),
            None => apply_or_unclassified(rules, first, ev),
        };
    }
    if let Some(rule) = rules.find(&wider).filter(|r| r.looks_at_text()) {
        return rules.apply(rule, &wider);
    }
    // Only words without any reply code can be a connection failure, or words about the
    // connection under a 421, which MTAs also write for one they lost (RFC 5321 §3.8).
    let no_code = ev
        .reply
        .as_ref()
        .is_none_or(|r| r.code == 0 || r.code == 421 && both.to_ascii_lowercase().contains("connection"));
    let mut net = Evidence::bare(Stage::Connect, ev.domain.clone());
    net.network = Some(both);
    if let Some(rule) = rules.find(&net).filter(|r| no_code && r.looks_at_text()) {
        // Matched on all the words; quoted from the diagnostic alone when there is one.
        if !f.diagnostic.trim().is_empty() {
            net.network = Some(f.diagnostic.clone());
        }
        // The rest of the reading (refinement, a rule applied anew) looks at the reply.
        return Explanation { evidence: ev.clone(), ..rules.apply(rule, &net) };
    }
    apply_or_unclassified(rules, first, ev)
}

fn apply_or_unclassified(
    rules: &crate::Rules,
    rule: Option<&crate::rules::Rule>,
    ev: &Evidence,
) -> Explanation {
    match rule {
        Some(rule) => rules.apply(rule, ev),
        None => crate::classify::unclassified(ev, "no rule recognises this outcome"),
    }
}

/// How many of the first [`GAVE_UP`] phrases say the server is still retrying.
const RETRYING: usize = 5;

/// Phrases with which servers say they stopped retrying, or are still retrying: the mail
/// was not delivered because time ran out, whatever the last attempt's trouble was.
const GAVE_UP: &[&str] = &[
    // Still retrying: a delay report, not a final one.
    "will be retried for",
    "will continue trying",
    "will keep trying",
    "delivery attempts will continue",
    "retry timeout exceeded",
    // Stopped retrying.
    "in the queue too long",
    "message expired",
    "envelope expired",
    "delivery time expired",
    "not delivered within",
    "could not be delivered within",
    "could not be delivered for",
    "cannot send message for",
    "still undelivered after",
    "retry time not reached",
    "have been failing for a long time",
    "has been failing for a long time",
    "giving up",
    "message timed out",
    "unable to deliver in time",
    "did not accept our requests to connect",
    "wasn't able to establish an smtp connection",
    "unable to connect to remote server",
    "host not reachable",
    "connection timed out",
];

/// The status that says most: the report's own, unless it is a bare `x.0.0` and the text
/// carries a more specific one of the same class.
fn effective_status<'a>(own: Option<&'a str>, text: Option<&'a str>) -> Option<&'a str> {
    match (own, text) {
        (Some(o), Some(t)) if o.ends_with(".0.0") && !t.ends_with(".0.0") && o.get(..1) == t.get(..1) => {
            Some(t)
        }
        (Some(o), _) => Some(o),
        (None, t) => t,
    }
}

/// Words with which servers report that a destination's name did not resolve.
const UNFINDABLE: &[&str] =
    &["host name lookup failure", "dns error", "name server", "domain name not found"];
/// Words with which servers report that no route led to a destination (`EHOSTUNREACH`,
/// `ENETUNREACH`).
const UNREACHABLE: &[&str] = &["no route to host", "network is unreachable"];

/// The rule whose cause and fix explain a reason that [`refine`] arrived at; `text` is the
/// report's lowercased text.
fn rule_for(reason: Reason, text: &str) -> &'static str {
    match reason {
        Reason::NetworkError if UNFINDABLE.iter().any(|p| text.contains(p)) => "dns-error-temporary",
        Reason::NetworkError => "net-unreachable",
        Reason::Filtered => "filtered",
        Reason::Expired => "still-retrying-or-expired",
        Reason::Rejected => "sender-rejected",
        Reason::UserUnknown => "status-bad-mailbox",
        Reason::ExceedLimit => "message-length-limit",
        Reason::MesgTooBig => "message-too-big",
        Reason::MailerError => "local-delivery-program",
        _ => "",
    }
}

/// `trimmed`, or `whole` when trimming left nothing.
fn or_whole(trimmed: String, whole: &str) -> String {
    if trimmed.is_empty() { whole.to_string() } else { trimmed }
}

/// Whether a status confirms the failure is about the address itself: `x.1.x` (addressing)
/// or `x.5.x` (the command, here RCPT, was refused).
fn names_address(status: Option<&str>) -> bool {
    status.is_some_and(|s| s.get(1..3) == Some(".1") || s.get(1..3) == Some(".5"))
}

/// Adjusts the reason for what a report says beyond one reply: that the mail expired in the
/// reporting server's queue, or that a "no such user" came only after the content was sent.
fn refine(reason: Reason, rule: &str, stage: Stage, status: Option<&str>, text: &str) -> Reason {
    let transient =
        matches!(reason, Reason::NetworkError | Reason::Undefined | Reason::OnHold | Reason::Expired);
    let gave_up = GAVE_UP.iter().any(|p| text.contains(p));
    let dns = UNFINDABLE.iter().any(|p| text.contains(p));
    let unreachable = UNREACHABLE.iter().any(|p| text.contains(p));
    let detail = status.and_then(|s| s.get(1..));
    if matches!(reason, Reason::MesgTooBig | Reason::ExceedLimit) && matches!(detail, Some(".2.3" | ".3.4")) {
        // Size words are ambiguous; the status tells the recipient's limit (x.2.3) from
        // the system's (x.3.4), RFC 3463 §3.3 and §3.4.
        if detail == Some(".2.3") { Reason::ExceedLimit } else { Reason::MesgTooBig }
    } else if reason == Reason::UserUnknown
        && matches!(stage, Stage::Data | Stage::Dot)
        && !names_address(status)
    {
        // Refused after DATA without a status naming the address (x.1.x): a content filter
        // answered, not the mailbox lookup.
        Reason::Filtered
    } else if reason == Reason::Suspend && detail == Some(".1.1") {
        // "Inactive" is worded loosely; x.1.1 says the mailbox does not exist (RFC 3463).
        Reason::UserUnknown
    } else if rule == "user-unknown" && status.is_some_and(|s| s.get(1..3) == Some(".7")) {
        // A generic "user unknown" under a security/policy status (x.7.x): a filter
        // refused it. Providers' own wordings (rules of their own) mean what they say.
        Reason::Filtered
    } else if matches!(reason, Reason::Expired | Reason::NetworkError) && (dns || unreachable) {
        // Retried until time ran out, but the attempts say why: the destination's name
        // did not resolve, or no route led to it. That, not the clock, is the failure.
        Reason::NetworkError
    } else if transient && gave_up && !dns {
        Reason::Expired
    } else if stage == Stage::Mail
        && matches!(reason, Reason::UserUnknown | Reason::HostUnknown | Reason::OnHold | Reason::Suspend)
    {
        // Refused at MAIL FROM: the sender address was refused, whatever the words.
        Reason::Rejected
    } else {
        reason
    }
}

/// Longest diagnostic quoted in a finding, in characters.
const DIAGNOSTIC_MAX: usize = 1000;
