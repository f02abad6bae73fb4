//! Classification rules as data: the `rules/*.toml` files, parsed and checked once.
//!
//! A rule matches evidence from one source (a reply, the DNS outcome, a network error or a
//! TLS failure) and says what it means. Within a source, rules that look at text are tried
//! before rules that look only at the enhanced status code (RFC 3463), and those before
//! rules that look only at the reply code and stage: the text outranks the codes, because
//! servers reuse codes loosely (docs/FAILURES.md, "Replies users misread").

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use homing_smtp::EnhancedStatus;
use serde::Deserialize;

use crate::evidence::{DnsEvidence, Evidence, ReplyEvidence};
use crate::taxonomy::{Actor, Reason, Scope, Stage};
use crate::template;

/// The built-in rules files, in the order their rules are tried within a tier.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rules/transport.toml", include_str!("../rules/transport.toml")),
    ("rules/providers.toml", include_str!("../rules/providers.toml")),
    ("rules/bounces.toml", include_str!("../rules/bounces.toml")),
    ("rules/replies.toml", include_str!("../rules/replies.toml")),
    ("rules/codes.toml", include_str!("../rules/codes.toml")),
    ("rules/blocklists.toml", include_str!("../rules/blocklists.toml")),
];

/// Why a rules file cannot be used. Names the file, the rule and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: not valid rules TOML: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: rule {rule:?}, field `{field}`: {message}")]
    Field { file: String, rule: String, field: &'static str, message: String },
    #[error("{file}: rule id {rule:?} is used twice; ids must be unique across all files")]
    DuplicateId { file: String, rule: String },
}

/// Where a rule looks for evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Reply,
    Dns,
    Network,
    Tls,
}

/// A status code pattern: `5.1.1`, `x.1.1` (any class), `x.7` (any detail), or a detail
/// range `5.7.606-649`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusPattern {
    class: Option<u8>,
    subject: Option<u16>,
    detail: Option<(u16, u16)>,
}

impl StatusPattern {
    fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let num = |p: &str| -> Option<Option<u16>> {
            if p.eq_ignore_ascii_case("x") { Some(None) } else { p.parse().ok().map(Some) }
        };
        let class = match num(parts[0])? {
            Some(c @ (2 | 4 | 5)) => Some(c as u8),
            Some(_) => return None,
            None => None,
        };
        let subject = num(parts[1])?;
        let detail = match parts.get(2) {
            None => None,
            Some(d) => match d.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (lo.parse().ok()?, hi.parse().ok()?);
                    (lo <= hi).then_some((lo, hi))?;
                    Some((lo, hi))
                }
                None => num(d)?.map(|v| (v, v)),
            },
        };
        Some(Self { class, subject, detail })
    }

    fn matches(&self, s: EnhancedStatus) -> bool {
        self.class.is_none_or(|c| c == s.class)
            && self.subject.is_none_or(|v| v == s.subject)
            && self.detail.is_none_or(|(lo, hi)| (lo..=hi).contains(&s.detail))
    }
}

/// A reply code pattern: three characters, each a digit or `x` (`550`, `5xx`, `45x`).
fn code_matches(pattern: &str, code: u16) -> bool {
    let code = code.to_string();
    pattern.len() == 3
        && code.len() == 3
        && pattern.bytes().zip(code.bytes()).all(|(p, c)| p == b'x' || p == c)
}

fn valid_code_pattern(p: &str) -> bool {
    p.len() == 3
        && p.bytes().all(|b| b == b'x' || b.is_ascii_digit())
        && matches!(p.as_bytes()[0], b'2'..=b'5' | b'x')
}

/// One example a rule must classify: checked by the test suite, never at runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub code: Option<u16>,
    pub status: Option<String>,
    pub text: Option<String>,
    pub stage: Option<String>,
    pub dns: Option<String>,
    pub network: Option<String>,
    pub tls: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    reason: String,
    hard: bool,
    scope: String,
    actor: String,
    status: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    all: Vec<String>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    statuses: Vec<String>,
    #[serde(default)]
    stages: Vec<String>,
    #[serde(default)]
    dns: Vec<String>,
    cause: String,
    fix: String,
    #[serde(default)]
    example: Vec<Example>,
}

/// A known blocklist (DNSBL): how replies name it and where to look an IP up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blocklist {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    pub lookup: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    blocklist: Vec<Blocklist>,
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub file: String,
    pub reason: Reason,
    /// Hard when the reply is permanent (5xx); a 4xx reply is always soft.
    pub hard: bool,
    pub scope: Scope,
    pub actor: Actor,
    /// The enhanced status to report when the evidence carries none of its own (or one
    /// that contradicts this rule, as when the text outranked the code).
    pub status: Option<EnhancedStatus>,
    pub source: Source,
    any: Vec<String>,
    all: Vec<String>,
    any_ids: Vec<usize>,
    all_ids: Vec<usize>,
    codes: Vec<String>,
    statuses: Vec<StatusPattern>,
    stages: Vec<Stage>,
    dns: Vec<String>,
    pub cause: String,
    pub fix: String,
    pub examples: Vec<Example>,
}

impl Rule {
    /// 0: looks at text; 1: at the enhanced status; 2: at the code or stage only.
    fn tier(&self) -> u8 {
        if !self.any.is_empty() || !self.all.is_empty() {
            0
        } else if !self.statuses.is_empty() {
            1
        } else {
            2
        }
    }

    /// Whether the rule recognised words in the evidence (rather than only codes or the
    /// stage): the strongest kind of match.
    pub fn looks_at_text(&self) -> bool {
        self.tier() == 0
    }

    /// Whether the rule looks only at the enhanced status and the code (used to tell
    /// whether a reply's own status agrees with a text rule).
    pub(crate) fn is_status_rule(&self) -> bool {
        self.source == Source::Reply && self.tier() == 1
    }

    fn matches_text(&self, seen: &Seen) -> bool {
        (self.any_ids.is_empty() || self.any_ids.iter().any(|&i| seen.has(i)))
            && self.all_ids.iter().all(|&i| seen.has(i))
    }

    fn matches_reply(&self, stage: Stage, reply: &ReplyEvidence, seen: &Seen) -> bool {
        let status_ok = self.statuses.is_empty()
            || reply.enhanced_status().is_some_and(|s| self.statuses.iter().any(|p| p.matches(s)));
        status_ok
            && (self.codes.is_empty() || self.codes.iter().any(|p| code_matches(p, reply.code)))
            && (self.stages.is_empty() || self.stages.contains(&stage))
            && self.matches_text(seen)
    }

    fn matches(&self, ev: &Evidence, seen: &Seen) -> bool {
        let stage_ok = self.stages.is_empty() || self.stages.contains(&ev.stage);
        match self.source {
            Source::Reply => ev.reply.as_ref().is_some_and(|r| self.matches_reply(ev.stage, r, seen)),
            Source::Dns => ev.dns.as_ref().is_some_and(|d| {
                (self.dns.is_empty() || self.dns.iter().any(|k| k == d.kind())) && self.matches_text(seen)
            }),
            Source::Network => ev.network.is_some() && stage_ok && self.matches_text(seen),
            Source::Tls => ev.tls.is_some() && stage_ok && self.matches_text(seen),
        }
    }
}

/// A checked set of rules and blocklists.
#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
    blocklists: Vec<Blocklist>,
    /// Every distinct `any`/`all` phrase, searched in one pass over a text.
    phrases: AhoCorasick,
}

/// Which phrases (by id) a text contains.
#[derive(Debug, Default)]
struct Seen(Vec<bool>);

impl Seen {
    fn has(&self, id: usize) -> bool {
        self.0.get(id).copied().unwrap_or(false)
    }
}

impl Rules {
    /// The rules compiled into homing, parsed on first use. A broken file is reported here
    /// (and fails the test suite), never as a panic.
    pub fn builtin() -> Result<&'static Rules, &'static RulesError> {
        static BUILTIN_RULES: OnceLock<Result<Rules, RulesError>> = OnceLock::new();
        BUILTIN_RULES.get_or_init(|| Rules::parse(BUILTIN)).as_ref()
    }

    /// Parses and checks rules files, given as `(name, contents)` in priority order.
    pub fn parse(files: &[(&str, &str)]) -> Result<Rules, RulesError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut blocklists = Vec::new();
        for (file, text) in files {
            let raw: RawFile = toml::from_str(text)
                .map_err(|e| RulesError::Syntax { file: file.to_string(), message: e.to_string() })?;
            for r in raw.rule {
                let rule = check(file, r)?;
                if rules.iter().any(|o| o.id == rule.id) {
                    return Err(RulesError::DuplicateId { file: file.to_string(), rule: rule.id });
                }
                rules.push(rule);
            }
            blocklists.extend(raw.blocklist.into_iter().map(|mut b| {
                b.matches = b.matches.iter().map(|m| m.to_lowercase()).collect();
                b
            }));
        }
        // Stable sort: tiers first, file order within a tier.
        rules.sort_by_key(Rule::tier);
        let mut phrases: Vec<String> = Vec::new();
        for rule in &mut rules {
            let mut id_of = |p: &String| match phrases.iter().position(|q| q == p) {
                Some(i) => i,
                None => {
                    phrases.push(p.clone());
                    phrases.len() - 1
                }
            };
            rule.any_ids = rule.any.iter().map(&mut id_of).collect();
            rule.all_ids = rule.all.iter().map(&mut id_of).collect();
        }
        let phrases = AhoCorasick::new(&phrases).map_err(|e| RulesError::Syntax {
            file: "(all rules files)".into(),
            message: format!("the rules' phrases cannot be compiled: {e}"),
        })?;
        Ok(Rules { rules, blocklists, phrases })
    }

    /// The phrases `text` (already normalized) contains, found in one pass.
    fn seen(&self, text: &str) -> Seen {
        let mut seen = vec![false; self.phrases.patterns_len()];
        for m in self.phrases.find_overlapping_iter(text) {
            seen[m.pattern().as_usize()] = true;
        }
        Seen(seen)
    }

    /// Every rule, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn blocklists(&self) -> &[Blocklist] {
        &self.blocklists
    }

    /// The first rule that matches, trying sources in order of precedence: DNS, network,
    /// TLS, then the reply.
    pub fn find(&self, ev: &Evidence) -> Option<&Rule> {
        let sources: [(Source, Option<String>); 4] = [
            (Source::Dns, ev.dns.as_ref().map(|d| normalize(d.detail()))),
            (Source::Network, ev.network.as_ref().map(|s| normalize(s))),
            (Source::Tls, ev.tls.as_ref().map(|s| normalize(s))),
            (Source::Reply, ev.reply.as_ref().map(|r| normalize(&r.text))),
        ];
        sources.iter().find_map(|(source, lower)| {
            let seen = self.seen(lower.as_deref()?);
            self.rules.iter().find(|r| r.source == *source && r.matches(ev, &seen))
        })
    }

    /// The rule with this id.
    pub fn by_id(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The first status-only rule matching this reply, ignoring its text.
    pub(crate) fn find_by_status(&self, stage: Stage, reply: &ReplyEvidence) -> Option<&Rule> {
        self.rules.iter().find(|r| r.is_status_rule() && r.matches_reply(stage, reply, &Seen::default()))
    }
}

/// Text as rules see it: lowercase, every run of whitespace (line breaks of multi-line
/// replies, the wrapping of bounce texts) one space.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

fn check(file: &str, r: RawRule) -> Result<Rule, RulesError> {
    let id = r.id.clone();
    let err = |field: &'static str, message: String| RulesError::Field {
        file: file.to_string(),
        rule: id.clone(),
        field,
        message,
    };
    let source = match r.source.as_deref().unwrap_or("reply") {
        "reply" => Source::Reply,
        "dns" => Source::Dns,
        "network" => Source::Network,
        "tls" => Source::Tls,
        other => {
            return Err(err("source", format!("{other:?} is not one of reply, dns, network, tls")));
        }
    };
    let reason: Reason = r.reason.parse().map_err(|e| err("reason", format!("{e}")))?;
    let scope: Scope = r.scope.parse().map_err(|e| err("scope", format!("{e}")))?;
    let actor: Actor = r.actor.parse().map_err(|e| err("actor", format!("{e}")))?;
    let status = match &r.status {
        None => None,
        Some(s) => Some(s.parse::<EnhancedStatus>().map_err(|e| err("status", e.to_string()))?),
    };
    let statuses = r
        .statuses
        .iter()
        .map(|s| {
            StatusPattern::parse(s).ok_or_else(|| {
                err("statuses", format!("{s:?} is not a pattern like 5.1.1, x.1.1, x.7 or 5.7.606-649"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(c) = r.codes.iter().find(|c| !valid_code_pattern(c)) {
        return Err(err("codes", format!("{c:?} is not a pattern like 550, 5xx or 45x")));
    }
    let stages = r
        .stages
        .iter()
        .map(|s| s.parse::<Stage>().map_err(|e| err("stages", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(k) = r.dns.iter().find(|k| !DnsEvidence::KINDS.contains(&k.as_str())) {
        return Err(err("dns", format!("{k:?} is not one of {}", DnsEvidence::KINDS.join(", "))));
    }
    let reply_only = !r.codes.is_empty() || !r.statuses.is_empty();
    if source != Source::Reply && reply_only {
        return Err(err("codes", "codes and statuses only apply to rules with source = \"reply\"".into()));
    }
    if source != Source::Dns && !r.dns.is_empty() {
        return Err(err("dns", "dns kinds need source = \"dns\"".into()));
    }
    let has_match = reply_only
        || !r.any.is_empty()
        || !r.all.is_empty()
        || !r.stages.is_empty()
        || source != Source::Reply;
    if !has_match {
        return Err(err(
            "any",
            "the rule matches every reply; give any, all, codes, statuses or stages".into(),
        ));
    }
    if r.any.iter().chain(&r.all).any(|s| s.trim().is_empty()) {
        return Err(err("any", "an empty substring matches everything".into()));
    }
    for (field, text) in [("cause", &r.cause), ("fix", &r.fix)] {
        if text.trim().is_empty() {
            return Err(err(field, "must not be empty".into()));
        }
        template::check(text).map_err(|m| err(field, m))?;
    }
    if r.example.is_empty() {
        return Err(err("example", "every rule needs at least one example the tests can check".into()));
    }
    Ok(Rule {
        id: r.id,
        file: file.to_string(),
        reason,
        hard: r.hard,
        scope,
        actor,
        status,
        source,
        any: r.any.iter().map(|s| normalize(s)).collect(),
        all: r.all.iter().map(|s| normalize(s)).collect(),
        any_ids: Vec::new(),
        all_ids: Vec::new(),
        codes: r.codes,
        statuses,
        stages,
        dns: r.dns,
        cause: r.cause,
        fix: r.fix,
        examples: r.example,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_patterns() {
        let p = |s: &str| StatusPattern::parse(s).unwrap();
        let st = |s: &str| s.parse::<EnhancedStatus>().unwrap();
        assert!(p("x.1.1").matches(st("4.1.1")));
        assert!(!p("x.1.1").matches(st("5.1.10")));
        assert!(p("x.7").matches(st("5.7.26")));
        assert!(p("5.7.606-649").matches(st("5.7.606")));
        assert!(!p("5.7.606-649").matches(st("5.7.650")));
        for bad in ["5", "3.1.1", "5.1.1.1", "5.7.9-1", "y.1.1"] {
            assert!(StatusPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn code_patterns() {
        assert!(code_matches("5xx", 554));
        assert!(code_matches("45x", 452));
        assert!(!code_matches("45x", 421));
        assert!(!code_matches("5xx", 5500));
    }

    #[test]
    fn builtin_rules_load() {
        let rules = Rules::builtin().unwrap();
        assert!(rules.rules().len() >= 40);
    }

    fn one(rule: &str) -> Result<Rules, RulesError> {
        Rules::parse(&[("test.toml", rule)])
    }

    #[test]
    fn broken_rules_name_the_file_rule_and_field() {
        let base = r#"[[rule]]
id = "r"
reason = "REASON"
hard = true
scope = "recipient"
actor = "sender"
any = ["x"]
cause = "CAUSE"
fix = "f"
example = [{ code = 550, text = "x" }]
"#;
        let e = one(&base.replace("REASON", "nosuch")).unwrap_err().to_string();
        assert!(e.contains("test.toml") && e.contains("\"r\"") && e.contains("reason"), "{e}");
        let e =
            one(&base.replace("REASON", "userunknown").replace("CAUSE", "{nope}")).unwrap_err().to_string();
        assert!(e.contains("cause") && e.contains("nope"), "{e}");
        let no_example =
            base.replace("REASON", "userunknown").replace("example = [{ code = 550, text = \"x\" }]\n", "");
        assert!(one(&no_example).unwrap_err().to_string().contains("example"));
        assert!(matches!(one("[[rule]"), Err(RulesError::Syntax { .. })));
        let ok = base.replace("REASON", "userunknown");
        let twice = format!("{ok}\n{ok}");
        assert!(matches!(one(&twice), Err(RulesError::DuplicateId { .. })));
        assert!(one(&ok).is_ok());
    }
}
