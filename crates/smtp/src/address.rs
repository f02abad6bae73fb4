//! Mailbox paths as they appear in `MAIL FROM:` and `RCPT TO:` (RFC 5321 §4.1.2), with the
//! SMTPUTF8 extensions of RFC 6531 §3.3.
//!
//! Addresses are parsed once, here, into [`Address`]; everything downstream works on the type.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1: the longest local part, in octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: the longest domain, in octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: the longest path, in octets, brackets included.
pub const MAX_PATH: usize = 256;
/// RFC 1035 §2.3.4: the longest DNS label, in octets.
const MAX_LABEL: usize = 63;

/// What the parser accepts beyond plain RFC 5321.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressOptions {
    /// Allow UTF-8 in the local part and domain (RFC 6531 §3.3); only when the transaction
    /// uses SMTPUTF8.
    pub utf8: bool,
}

/// The domain of a mailbox: a name or an address literal (RFC 5321 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A domain name, lowercased, without a trailing dot.
    Name(String),
    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    Literal(IpAddr),
}

impl Domain {
    /// Parses a domain or address literal, as after the `@` of a mailbox.
    pub fn parse(s: &str, opts: AddressOptions) -> Result<Self, AddressError> {
        parse_domain(s, opts)
    }

    /// True when the domain is plain ASCII (no U-labels).
    pub fn is_ascii(&self) -> bool {
        match self {
            Domain::Name(n) => n.is_ascii(),
            Domain::Literal(_) => true,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(IpAddr::V4(ip)) => write!(f, "[{ip}]"),
            Domain::Literal(IpAddr::V6(ip)) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

/// A mailbox, `local-part@domain` (RFC 5321 §4.1.2 `Mailbox`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The local part with quoting removed (`"a b"@x` holds `a b`). Case is kept: only the
    /// receiving host may interpret it (RFC 5321 §2.4).
    pub local_part: String,
    pub domain: Domain,
}

impl Address {
    /// The domain as text: the lowercased name, or the bracketed literal.
    pub fn domain_str(&self) -> Cow<'_, str> {
        match &self.domain {
            Domain::Name(n) => Cow::Borrowed(n),
            lit => Cow::Owned(lit.to_string()),
        }
    }

    /// True when the address needs no SMTPUTF8 (RFC 6531 §3.3).
    pub fn is_ascii(&self) -> bool {
        self.local_part.is_ascii() && self.domain.is_ascii()
    }

    /// The address in angle brackets, as in `RCPT TO:<...>`.
    pub fn to_path(&self) -> String {
        format!("<{self}>")
    }
}

/// Writes `local@domain`, quoting the local part when it is not a dot-string
/// (RFC 5321 §4.1.2 `Quoted-string`).
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local_part) {
            f.write_str(&self.local_part)?;
        } else {
            f.write_str("\"")?;
            for c in self.local_part.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// The `MAIL FROM:` path: a mailbox or the null path `<>` used by bounces
/// (RFC 5321 §4.5.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    Null,
    Address(Address),
}

impl ReversePath {
    /// True when the path needs no SMTPUTF8.
    pub fn is_ascii(&self) -> bool {
        match self {
            ReversePath::Null => true,
            ReversePath::Address(a) => a.is_ascii(),
        }
    }
}

/// Writes the path with its brackets: `<>` or `<user@example.com>`.
impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Address(a) => write!(f, "<{a}>"),
        }
    }
}

/// A parsed path and what was dropped from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPath {
    pub address: Address,
    /// The path carried a source route (`<@a,@b:user@d>`), which was dropped.
    pub had_source_route: bool,
}

/// Why a path or address was refused. The messages go to the SMTP client verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the path is empty; write it as <user@example.com>")]
    Empty,
    #[error("the path is {len} octets long; RFC 5321 §4.5.3.1.3 allows at most {MAX_PATH}")]
    PathTooLong { len: usize },
    #[error("the path has unbalanced angle brackets; write it as <user@example.com>")]
    Brackets,
    #[error("the address has no @domain part; write it as user@example.com")]
    MissingAt,
    #[error("the local part (before the @) is empty")]
    EmptyLocalPart,
    #[error("the local part is {len} octets long; RFC 5321 §4.5.3.1.1 allows at most {MAX_LOCAL_PART}")]
    LocalPartTooLong { len: usize },
    #[error("the local part contains {ch:?}, which is only allowed inside a quoted local part")]
    BadLocalPartChar { ch: char },
    #[error(
        "the local part has an empty dot-separated part (two dots in a row, or a leading or trailing dot); quote it"
    )]
    EmptyAtom,
    #[error("the quoted local part is not closed or contains a character not allowed there")]
    BadQuotedString,
    #[error("the domain is empty")]
    EmptyDomain,
    #[error("the domain is {len} octets long; RFC 5321 §4.5.3.1.2 allows at most {MAX_DOMAIN}")]
    DomainTooLong { len: usize },
    #[error("the domain {domain:?} ends with a dot; write it without the trailing dot")]
    TrailingDot { domain: String },
    #[error("the domain {domain:?} is not valid: {reason}")]
    BadDomain { domain: String, reason: &'static str },
    #[error("the address literal {0:?} is neither [IPv4] nor [IPv6:address]")]
    BadAddressLiteral(String),
    #[error(
        "the address contains non-ASCII characters; those need the SMTPUTF8 extension (RFC 6531): add SMTPUTF8 to MAIL FROM"
    )]
    Utf8NotAllowed,
    #[error("the source route {0:?} is malformed; send the path without a route")]
    BadSourceRoute(String),
}

/// Parses a forward path such as `<user@example.com>` (RFC 5321 §4.1.2 `Path`).
pub fn parse_path(s: &str, opts: AddressOptions) -> Result<Address, AddressError> {
    parse_path_detailed(s, opts).map(|p| p.address)
}

/// Parses a reverse path: `<>` or a path (RFC 5321 §4.1.2 `Reverse-path`).
pub fn parse_reverse_path(s: &str, opts: AddressOptions) -> Result<ReversePath, AddressError> {
    if s == "<>" {
        return Ok(ReversePath::Null);
    }
    parse_path(s, opts).map(ReversePath::Address)
}

/// Parses a path, reporting whether a source route was dropped.
///
/// LENIENT: a path without angle brackets (`MAIL FROM:user@example.com`) is accepted; many
/// old clients send it and it is unambiguous.
/// LENIENT: source routes are accepted and dropped (RFC 5321 §4.1.1.3 and Appendix C let a
/// server ignore them); the result records that one was present.
pub fn parse_path_detailed(s: &str, opts: AddressOptions) -> Result<ParsedPath, AddressError> {
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    if s.len() > MAX_PATH {
        return Err(AddressError::PathTooLong { len: s.len() });
    }
    let inner = match s.strip_prefix('<') {
        Some(rest) => rest.strip_suffix('>').ok_or(AddressError::Brackets)?,
        None if s.contains('>') => return Err(AddressError::Brackets),
        None => s,
    };
    let (mailbox, had_source_route) = match inner.strip_prefix('@') {
        Some(_) => (skip_source_route(inner, opts)?, true),
        None => (inner, false),
    };
    let address = parse_mailbox(mailbox, opts)?;
    Ok(ParsedPath { address, had_source_route })
}

/// Validates `@a,@b:` and returns what follows the colon (RFC 5321 §4.1.2 `A-d-l`).
fn skip_source_route(s: &str, opts: AddressOptions) -> Result<&str, AddressError> {
    let bad = || AddressError::BadSourceRoute(s.to_string());
    let mut rest = s;
    loop {
        rest = rest.strip_prefix('@').ok_or_else(bad)?;
        // A domain ends at ',' or ':', except inside an IPv6 literal's brackets.
        let end = if rest.starts_with('[') {
            rest.find(']').map(|i| i + 1).ok_or_else(bad)?
        } else {
            rest.find([',', ':']).ok_or_else(bad)?
        };
        parse_domain(&rest[..end], opts).map_err(|_| bad())?;
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            return rest.strip_prefix(':').ok_or_else(bad);
        }
    }
}

/// Parses `local-part@domain` without brackets (RFC 5321 §4.1.2 `Mailbox`).
pub fn parse_mailbox(s: &str, opts: AddressOptions) -> Result<Address, AddressError> {
    let (local_part, wire_len, rest) = if s.starts_with('"') {
        let (value, used) = parse_quoted(s, opts)?;
        (value, used, &s[used..])
    } else {
        let at = s.find('@').ok_or(AddressError::MissingAt)?;
        let local = &s[..at];
        check_dot_string(local, opts)?;
        (local.to_string(), at, &s[at..])
    };
    if wire_len > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong { len: wire_len });
    }
    let domain = rest.strip_prefix('@').ok_or(AddressError::MissingAt)?;
    let domain = parse_domain(domain, opts)?;
    Ok(Address { local_part, domain })
}

fn is_atext(c: char, utf8: bool) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (utf8 && !c.is_ascii())
}

/// True when `s` can be written without quotes (RFC 5321 §4.1.2 `Dot-string`).
fn is_dot_string(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(|a| !a.is_empty() && a.chars().all(|c| is_atext(c, true)))
}

fn check_dot_string(s: &str, opts: AddressOptions) -> Result<(), AddressError> {
    if s.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    for c in s.chars() {
        if !c.is_ascii() && !opts.utf8 {
            return Err(AddressError::Utf8NotAllowed);
        }
        if c != '.' && !is_atext(c, opts.utf8) {
            return Err(AddressError::BadLocalPartChar { ch: c });
        }
    }
    if s.split('.').any(str::is_empty) {
        return Err(AddressError::EmptyAtom);
    }
    Ok(())
}

/// Parses a leading `Quoted-string`; returns the unescaped value and the octets consumed.
fn parse_quoted(s: &str, opts: AddressOptions) -> Result<(String, usize), AddressError> {
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, i + 1)),
            '\\' => match chars.next() {
                // quoted-pairSMTP = %d92 %d32-126
                Some((_, e)) if (' '..='~').contains(&e) => value.push(e),
                _ => return Err(AddressError::BadQuotedString),
            },
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126
            ' '..='~' => value.push(c),
            _ if !c.is_ascii() => {
                if !opts.utf8 {
                    return Err(AddressError::Utf8NotAllowed);
                }
                value.push(c);
            }
            _ => return Err(AddressError::BadQuotedString),
        }
    }
    Err(AddressError::BadQuotedString)
}

fn parse_domain(s: &str, opts: AddressOptions) -> Result<Domain, AddressError> {
    if s.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if let Some(lit) = s.strip_prefix('[') {
        return parse_literal(lit.strip_suffix(']'), s);
    }
    if s.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong { len: s.len() });
    }
    if s.ends_with('.') {
        return Err(AddressError::TrailingDot { domain: s.to_string() });
    }
    let bad = |reason| AddressError::BadDomain { domain: s.to_string(), reason };
    for label in s.split('.') {
        if label.is_empty() {
            return Err(bad("it has an empty label (two dots in a row or a leading dot)"));
        }
        if label.len() > MAX_LABEL {
            return Err(bad("a label is longer than 63 octets"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with a hyphen"));
        }
        for c in label.chars() {
            if !c.is_ascii() {
                if !opts.utf8 {
                    return Err(AddressError::Utf8NotAllowed);
                }
                // RFC 6531 §3.3 U-label; full IDNA2008 validation is left to DNS.
                if !c.is_alphanumeric() {
                    return Err(bad("it contains a non-ASCII character that is not a letter or digit"));
                }
            } else if !(c.is_ascii_alphanumeric() || c == '-') {
                return Err(bad("only letters, digits, hyphens and dots are allowed"));
            }
        }
    }
    Ok(Domain::Name(s.to_lowercase()))
}

/// RFC 5321 §4.1.3 address literals. General-address-literal (`[tag:...]`) is refused:
/// no standardized tag other than IPv6 exists.
fn parse_literal(inner: Option<&str>, whole: &str) -> Result<Domain, AddressError> {
    let bad = || AddressError::BadAddressLiteral(whole.to_string());
    let inner = inner.ok_or_else(bad)?;
    let v6 = inner.get(..5).filter(|p| p.eq_ignore_ascii_case("IPv6:"));
    if v6.is_some() {
        let ip: Ipv6Addr = inner[5..].parse().map_err(|_| bad())?;
        return Ok(Domain::Literal(IpAddr::V6(ip)));
    }
    let ip: Ipv4Addr = inner.parse().map_err(|_| bad())?;
    Ok(Domain::Literal(IpAddr::V4(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASCII: AddressOptions = AddressOptions { utf8: false };
    const UTF8: AddressOptions = AddressOptions { utf8: true };

    fn ok(s: &str) -> Address {
        match parse_path(s, ASCII) {
            Ok(a) => a,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    #[test]
    fn plain_paths() {
        let a = ok("<User.Name+tag@Example.COM>");
        assert_eq!(a.local_part, "User.Name+tag");
        assert_eq!(a.domain, Domain::Name("example.com".into()));
        assert_eq!(a.to_string(), "User.Name+tag@example.com");
        assert_eq!(a.domain_str(), "example.com");
        assert_eq!(ok("user@localhost").to_path(), "<user@localhost>");
    }

    #[test]
    fn quoted_local_parts_round_trip() {
        let a = ok(r#"<"john \"jr\" doe"@example.com>"#);
        assert_eq!(a.local_part, r#"john "jr" doe"#);
        assert_eq!(a.to_string(), r#""john \"jr\" doe"@example.com"#);
        assert_eq!(ok(r#"<"john"@x.org>"#).to_string(), "john@x.org");
        assert_eq!(ok(r#"<"a..b"@x.org>"#).to_string(), r#""a..b"@x.org"#);
        assert_eq!(ok(r#"<"a@b"@x.org>"#).local_part, "a@b");
        assert_eq!(parse_path(r#"<"abc@x.org>"#, ASCII), Err(AddressError::BadQuotedString));
    }

    #[test]
    fn literals() {
        assert_eq!(ok("<a@[192.0.2.1]>").domain, Domain::Literal("192.0.2.1".parse().unwrap()));
        let a = ok("<a@[IPv6:2001:db8::1]>");
        assert_eq!(a.domain_str(), "[IPv6:2001:db8::1]");
        for bad in ["<a@[300.1.1.1]>", "<a@[x:y]>", "<a@[1.2.3.4>", "<a@[IPv6:zz]>"] {
            assert!(matches!(parse_path(bad, ASCII), Err(AddressError::BadAddressLiteral(_))), "{bad}");
        }
    }

    #[test]
    fn source_routes_are_dropped_and_recorded() {
        let p = parse_path_detailed("<@a.example,@[IPv6:::1]:u@d.example>", ASCII).unwrap();
        assert!(p.had_source_route);
        assert_eq!(p.address.to_string(), "u@d.example");
        assert!(!parse_path_detailed("<u@d>", ASCII).unwrap().had_source_route);
        assert!(matches!(parse_path("<@a.example u@d>", ASCII), Err(AddressError::BadSourceRoute(_))));
    }

    #[test]
    fn reverse_paths() {
        assert_eq!(parse_reverse_path("<>", ASCII), Ok(ReversePath::Null));
        assert_eq!(ReversePath::Null.to_string(), "<>");
        let r = parse_reverse_path("<a@b.c>", ASCII).unwrap();
        assert_eq!(r.to_string(), "<a@b.c>");
    }

    #[test]
    fn lengths() {
        let local = "a".repeat(64);
        ok(&format!("<{local}@x.org>"));
        let e = parse_path(&format!("<{local}a@x.org>"), ASCII);
        assert_eq!(e, Err(AddressError::LocalPartTooLong { len: 65 }));
        let label = "b".repeat(63);
        let domain = [label.as_str(); 4].join(".");
        assert_eq!(domain.len(), 255);
        assert!(matches!(
            parse_path(&format!("<a@{domain}>"), ASCII),
            Err(AddressError::PathTooLong { len: 259 })
        ));
        assert!(matches!(
            parse_mailbox(&format!("a@{domain}x"), ASCII),
            Err(AddressError::DomainTooLong { .. })
        ));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("<a@b", AddressError::Brackets),
            ("<ab>", AddressError::MissingAt),
            ("<@b>", AddressError::BadSourceRoute("@b".into())),
            ("<a..b@c>", AddressError::EmptyAtom),
            ("<a b@c>", AddressError::BadLocalPartChar { ch: ' ' }),
            ("<a@>", AddressError::EmptyDomain),
            ("<a@b.>", AddressError::TrailingDot { domain: "b.".into() }),
            ("<jö@b>", AddressError::Utf8NotAllowed),
            ("<j@bö.de>", AddressError::Utf8NotAllowed),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_path(input, ASCII).unwrap_err(), want, "{input}");
        }
        assert!(matches!(parse_path("<a@-b.c>", ASCII), Err(AddressError::BadDomain { .. })));
        assert!(matches!(parse_path("<a@b_c.d>", ASCII), Err(AddressError::BadDomain { .. })));
    }

    #[test]
    fn smtputf8_addresses() {
        let a = parse_path("<jöran@Bücher.DE>", UTF8).unwrap();
        assert_eq!(a.local_part, "jöran");
        assert_eq!(a.domain_str(), "bücher.de");
        assert!(!a.is_ascii());
        assert!(parse_path("<\"jö ran\"@x.de>", UTF8).is_ok());
    }
}
