//! The machine-readable parts of reports: `message/delivery-status` (RFC 3464 §2) and
//! `message/feedback-report` (RFC 5965 §3.5). Both are groups of header-like fields
//! separated by blank lines.

use super::mime::{Field, Headers, parse_headers};

/// Field groups of a report body: blank lines separate them (RFC 3464 §2.1). Servers that
/// omit the blank lines between recipients are handled by starting a new group at each
/// repeated recipient field.
pub fn groups(text: &str) -> Vec<Headers> {
    let mut out: Vec<Headers> = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let headers = parse_headers(block.trim_matches('\n').as_bytes());
        if headers.0.is_empty() {
            continue;
        }
        let mut current: Vec<Field> = Vec::new();
        for f in headers.0 {
            let repeats =
                is_recipient_field(&f.name) && current.iter().any(|c| c.name.eq_ignore_ascii_case(&f.name));
            if repeats {
                out.push(Headers(std::mem::take(&mut current)));
            }
            current.push(f);
        }
        if !current.is_empty() {
            out.push(Headers(current));
        }
    }
    out
}

fn is_recipient_field(name: &str) -> bool {
    ["final-recipient", "original-recipient", "action", "status", "diagnostic-code"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// The address in a typed field (`rfc822; a@b`, RFC 3464 §2.3.2), without angle brackets.
/// Untyped values (`<a@b>`) are accepted too.
pub fn typed_address(value: &str) -> Option<String> {
    let v = match value.split_once(';') {
        Some((_, addr)) => addr,
        None => value,
    };
    let v = v.trim().trim_start_matches('<');
    let v = v.split(['>', ' ', '\t', '(']).next().unwrap_or("").trim();
    let v = v.trim_end_matches(['.', ',', ';']);
    (v.contains('@') && v.len() <= 320).then(|| v.to_string())
}

/// The type of a typed field (`smtp` of `smtp; 550 ...`), lowercased; empty when untyped.
pub fn value_type(value: &str) -> String {
    split_typed(value).map(|(kind, _)| kind.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// The text of a typed field (`smtp; 550 ...`, `dns; mx.example.com`).
pub fn typed_text(value: &str) -> String {
    split_typed(value).map_or(value, |(_, text)| text).trim().to_string()
}

/// A typed value's type and text, when it has a type: a short word before the first `;`.
fn split_typed(value: &str) -> Option<(&str, &str)> {
    value.split_once(';').filter(|(kind, _)| kind.len() < 16 && !kind.contains(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_per_recipient() {
        let g = groups(
            "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y\nStatus: 5.1.1\n\nFinal-Recipient: rfc822; z@y\nStatus: 4.2.2\n",
        );
        assert_eq!(g.len(), 3);
        assert_eq!(g[2].get("status"), Some("4.2.2"));
    }

    #[test]
    fn recipients_without_blank_lines_still_split() {
        let g = groups(
            "Final-Recipient: rfc822; x@y\nStatus: 5.1.1\nFinal-Recipient: rfc822; z@y\nStatus: 5.2.2\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].get("final-recipient"), Some("rfc822; z@y"));
    }

    #[test]
    fn addresses_and_texts() {
        assert_eq!(typed_address("rfc822; <Bob@Example.com>"), Some("Bob@Example.com".into()));
        assert_eq!(typed_address("bob@example.com (bob)"), Some("bob@example.com".into()));
        assert_eq!(typed_address("rfc822; nobody"), None);
        assert_eq!(typed_text("smtp; 550 5.1.1 no"), "550 5.1.1 no");
        assert_eq!(typed_text("550 5.1.1 no; such"), "550 5.1.1 no; such");
        assert_eq!(value_type("X-Unix; 71"), "x-unix");
        assert_eq!(value_type("550 5.1.1 no; such"), "");
    }
}
