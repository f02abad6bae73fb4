//! Cause and fix templates: `{placeholder}` substitution with a fixed set of names, each
//! with a readable fallback when the evidence lacks it.

use std::net::IpAddr;

use crate::rules::Blocklist;

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "domain",
    "server",
    "remote_host",
    "remote_ip",
    "sending_ip",
    "status",
    "code",
    "list",
    "lookup",
    "detail",
    "stage",
];

/// Checks that every `{...}` in `text` is a known placeholder and braces balance.
pub fn check(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched `}}` in {text:?}"));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("unclosed `{{` in {text:?}"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}}; known: {}", PLACEHOLDERS.join(", ")));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Values for the placeholders; a missing value renders as its fallback text.
#[derive(Debug, Default)]
pub struct Context {
    pub domain: String,
    pub remote_host: Option<String>,
    pub remote_ip: Option<String>,
    pub sending_ip: Option<String>,
    pub status: String,
    pub code: Option<u16>,
    pub list: Option<(String, String)>,
    pub detail: String,
    pub stage: &'static str,
}

impl Context {
    fn value(&self, name: &str) -> String {
        let or = |v: &Option<String>, fallback: &str| {
            v.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or(fallback).to_string()
        };
        match name {
            "domain" if self.domain.trim().is_empty() => "the recipient's domain".into(),
            "domain" => self.domain.clone(),
            "server" => match (&self.remote_host, &self.remote_ip) {
                (Some(h), Some(ip)) => format!("{h} [{ip}]"),
                (Some(h), None) => h.clone(),
                (None, Some(ip)) => format!("[{ip}]"),
                (None, None) => "the receiving server".into(),
            },
            "remote_host" => or(&self.remote_host, "the receiving server"),
            "remote_ip" => or(&self.remote_ip, "its address"),
            "sending_ip" => or(&self.sending_ip, "the sending IP"),
            "status" => self.status.clone(),
            "code" => self.code.map_or_else(|| "no reply".to_string(), |c| c.to_string()),
            "list" => self.list.as_ref().map_or_else(|| "a blocklist".to_string(), |(n, _)| n.clone()),
            "lookup" => self
                .list
                .as_ref()
                .map_or_else(|| "the blocklist's own lookup page".to_string(), |(_, l)| l.clone()),
            "detail" if self.detail.trim().is_empty() => "no details were given".into(),
            "detail" => self.detail.clone(),
            "stage" => self.stage.to_string(),
            _ => String::new(),
        }
    }
}

/// Fills in `text`. Unknown or unbalanced braces are copied as they are: templates are
/// checked when the rules load, so this only guards against misuse.
pub fn render(text: &str, ctx: &Context) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if PLACEHOLDERS.contains(&&after[..close]) => {
                out.push_str(&ctx.value(&after[..close]));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits reply text into candidate tokens (host names, IP literals).
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || "[]()<>,;\"'=".contains(c))
        .map(|t| t.trim_end_matches(['.', ':']))
        .filter(|t| !t.is_empty())
}

/// The first IP address literal in `text` other than `except` (the receiving server's own):
/// providers quote the sending IP they judged, e.g. Gmail's `[2001:db8::1]`.
pub fn sending_ip(text: &str, except: Option<&str>) -> Option<String> {
    tokens(text)
        .filter_map(|t| t.parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
        .find(|ip| Some(ip.as_str()) != except)
}

/// The blocklist a reply names, with a lookup address: a known list from the rules files,
/// or else the host name after "blocked using" / "listed at|in|on|by".
pub fn blocklist(text: &str, known: &[Blocklist]) -> Option<(String, String)> {
    let lower = text.to_lowercase();
    if let Some(b) = known.iter().find(|b| b.matches.iter().any(|m| lower.contains(m.as_str()))) {
        let named = b
            .matches
            .iter()
            .find(|m| m.contains('.') && lower.contains(m.as_str()))
            .cloned()
            .unwrap_or_else(|| b.name.clone());
        return Some((named, b.lookup.clone()));
    }
    let words: Vec<&str> = tokens(&lower).collect();
    words.windows(2).find_map(|w| {
        let marker =
            w[0] == "using" || (matches!(w[0], "at" | "in" | "on" | "by") && lower.contains("listed"));
        let host = w[1];
        let hostish = host.contains('.')
            && host.parse::<IpAddr>().is_err()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        (marker && hostish).then(|| (host.to_string(), format!("https://{host}/")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_known_and_rejects_unknown() {
        assert!(check("Mail to {domain} via {server}.").is_ok());
        assert!(check("{bogus}").unwrap_err().contains("bogus"));
        assert!(check("{domain").is_err());
        assert!(check("domain}").is_err());
    }

    #[test]
    fn render_uses_fallbacks() {
        let ctx = Context { domain: "example.com".into(), ..Context::default() };
        assert_eq!(
            render("{server} refused mail for {domain} {x}", &ctx),
            "the receiving server refused mail for example.com {x}"
        );
    }

    #[test]
    fn finds_the_sending_ip() {
        let t = "[2a01:4f8::1 12-20020a] The IP address sending this message does not have a PTR record";
        assert_eq!(sending_ip(t, None).as_deref(), Some("2a01:4f8::1"));
        assert_eq!(sending_ip("from [192.0.2.7]. see", Some("192.0.2.7")), None);
    }

    #[test]
    fn names_unknown_lists_from_the_text() {
        let (list, url) = blocklist("Client host [192.0.2.1] blocked using bl.example.org", &[]).unwrap();
        assert_eq!(list, "bl.example.org");
        assert_eq!(url, "https://bl.example.org/");
        assert!(blocklist("user at example.com unknown", &[]).is_none());
    }
}
