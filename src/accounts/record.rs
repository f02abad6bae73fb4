//! The user store's file (docs/submission.md): TOML, one `[[user]]` table per user, and the
//! checks that turn it into lookup tables.

use std::collections::HashMap;
use std::fmt;

use homing_smtp::address::parse_mailbox;
use homing_smtp::{Address, AddressOptions};
use serde::{Deserialize, Serialize};

/// The comment every rewrite puts on top of the file.
pub const HEADER: &str = "# homing users (docs/submission.md). Managed with `homing user add|passwd|edit|del|list`;\n\
# a running homing rereads this file when it changes. Passwords are argon2id PHC strings.\n\n";

/// The file as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The name given to AUTH; lowercase (logins compare case-insensitively).
    pub login: String,
    /// argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub password: String,
    /// The user's own addresses: mail to them is theirs, and they may send from them.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Further addresses that reach the user and that the user may send from; kept apart
    /// from `addresses` so the user's own ones stay clear.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Domains whose mail to addresses nobody owns reaches this user (catch-all).
    #[serde(default)]
    pub catch_all: Vec<String>,
    /// Mailbox quota in bytes; not enforced yet (local delivery comes later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
}

/// Why the file or a change to it is not acceptable. Each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "{0:?} is not a valid login: use 1 to 128 characters of a-z, 0-9 and . _ - + @, starting with a letter or digit"
    )]
    BadLogin(String),
    #[error("{value:?} is not a valid address ({detail}); write it as user@example.org")]
    BadAddress { value: String, detail: String },
    #[error("{0:?} is not a valid domain for catch-all; write it as example.org")]
    BadDomain(String),
    #[error("user {0} is listed twice")]
    DuplicateLogin(String),
    #[error("{address} belongs to both {first} and {second}; an address has one owner")]
    SharedAddress { address: String, first: String, second: String },
    #[error("the catch-all of {domain} is claimed by both {first} and {second}; a domain has one")]
    SharedCatchAll { domain: String, first: String, second: String },
}

/// A login as stored: lowercased (LENIENT: AUTH as `Alice` works for `alice`, as in most
/// IMAP and submission servers) and checked.
pub fn normalize_login(login: &str) -> Result<String, RecordError> {
    let l = login.to_ascii_lowercase();
    let ok = (1..=128).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-+@".contains(&b))
        && l.as_bytes()[0].is_ascii_alphanumeric();
    if ok { Ok(l) } else { Err(RecordError::BadLogin(login.to_string())) }
}

/// Parses an address given by an operator or a client (angle brackets allowed).
pub fn parse_address(s: &str) -> Result<Address, RecordError> {
    let t = s.trim();
    let t = t.strip_prefix('<').and_then(|t| t.strip_suffix('>')).unwrap_or(t);
    parse_mailbox(t, AddressOptions { utf8: true })
        .map_err(|e| RecordError::BadAddress { value: s.to_string(), detail: e.to_string() })
}

/// The lookup key of an address. DEVIATION: RFC 5321 §2.4 lets the receiving host decide
/// whether a local part's case matters; for its own users homing decides it does not
/// (`Alice@Example.org` is `alice@example.org`), as nearly every mail service does. Nothing
/// else is folded: no `+tag` stripping, no dot rules, and source routes, `%` and `!` are
/// never read as routing, so `a%b@here` is simply an address nobody owns.
pub fn address_key(a: &Address) -> String {
    a.to_string().to_lowercase()
}

/// A domain key for catch-all: the domain of `x@domain`, lowercased.
pub fn domain_key(domain: &str) -> Result<String, RecordError> {
    let probe = format!("x@{}", domain.trim());
    let a = parse_address(&probe).map_err(|_| RecordError::BadDomain(domain.to_string()))?;
    if a.domain_str().starts_with('[') {
        return Err(RecordError::BadDomain(domain.to_string()));
    }
    Ok(a.domain_str().to_lowercase())
}

/// How an address reaches its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Address,
    Alias,
    CatchAll,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Address => "address",
            Via::Alias => "alias",
            Via::CatchAll => "catch-all",
        })
    }
}

/// The checked file: users by login, and who owns which address and catch-all.
#[derive(Debug, Default)]
pub struct Directory {
    pub users: HashMap<String, User>,
    /// Address key → (login, how).
    pub owners: HashMap<String, (String, Via)>,
    /// Domain key → login.
    pub catch_all: HashMap<String, String>,
}

impl Directory {
    /// Checks every user, address and domain; the first problem is the error.
    pub fn build(file: &UsersFile) -> Result<Directory, RecordError> {
        let mut d = Directory::default();
        for u in &file.users {
            let login = normalize_login(&u.login)?;
            if login != u.login {
                return Err(RecordError::BadLogin(u.login.clone()));
            }
            if d.users.contains_key(&login) {
                return Err(RecordError::DuplicateLogin(login));
            }
            let listed = u.addresses.iter().map(|a| (a, Via::Address));
            for (a, via) in listed.chain(u.aliases.iter().map(|a| (a, Via::Alias))) {
                let key = address_key(&parse_address(a)?);
                if let Some((first, _)) = d.owners.get(&key) {
                    return Err(RecordError::SharedAddress {
                        address: a.clone(),
                        first: first.clone(),
                        second: login,
                    });
                }
                d.owners.insert(key, (login.clone(), via));
            }
            for dom in &u.catch_all {
                let key = domain_key(dom)?;
                if let Some(first) = d.catch_all.get(&key) {
                    return Err(RecordError::SharedCatchAll {
                        domain: dom.clone(),
                        first: first.clone(),
                        second: login,
                    });
                }
                d.catch_all.insert(key, login.clone());
            }
            d.users.insert(login, u.clone());
        }
        Ok(d)
    }

    /// Who gets mail for `address`: its owner, else its domain's catch-all.
    pub fn resolve(&self, address: &Address) -> Option<(&str, Via)> {
        if let Some((login, via)) = self.owners.get(&address_key(address)) {
            return Some((login, *via));
        }
        let domain = address.domain_str().to_lowercase();
        self.catch_all.get(&domain).map(|l| (l.as_str(), Via::CatchAll))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, addresses: &[&str]) -> User {
        User {
            login: login.into(),
            password: "$argon2id$x".into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            aliases: Vec::new(),
            catch_all: Vec::new(),
            quota: None,
        }
    }

    #[test]
    fn logins() {
        assert_eq!(normalize_login("Alice").unwrap(), "alice");
        assert_eq!(normalize_login("alice@example.org").unwrap(), "alice@example.org");
        for bad in ["", "-x", ".x", "a b", "a:b", "é", &"a".repeat(129)] {
            assert!(normalize_login(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolution_is_case_insensitive_and_exact() {
        let mut alice = user("alice", &["alice@example.org"]);
        alice.aliases = vec!["a@example.org".into()];
        let mut bob = user("bob", &["bob@example.org"]);
        bob.catch_all = vec!["Example.NET".into()];
        let d = Directory::build(&UsersFile { users: vec![alice, bob] }).unwrap();
        let r = |s: &str| d.resolve(&parse_address(s).unwrap()).map(|(l, v)| (l.to_string(), v));
        assert_eq!(r("Alice@EXAMPLE.org"), Some(("alice".into(), Via::Address)));
        assert_eq!(r("<a@example.org>"), Some(("alice".into(), Via::Alias)));
        assert_eq!(r("anyone@example.net"), Some(("bob".into(), Via::CatchAll)));
        for nobody in ["alice+tag@example.org", "al.ice@example.org", "alice%x@example.org", "c@example.org"]
        {
            assert_eq!(r(nobody), None, "{nobody}");
        }
    }

    #[test]
    fn conflicts_are_errors() {
        let file = UsersFile { users: vec![user("alice", &["x@e.org"]), user("bob", &["X@E.org"])] };
        assert!(matches!(Directory::build(&file), Err(RecordError::SharedAddress { .. })));
        let file = UsersFile { users: vec![user("alice", &[]), user("alice", &[])] };
        assert!(matches!(Directory::build(&file), Err(RecordError::DuplicateLogin(_))));
        let file = UsersFile { users: vec![user("Alice", &[])] };
        assert!(matches!(Directory::build(&file), Err(RecordError::BadLogin(_))));
        let file = UsersFile { users: vec![user("alice", &["not an address"])] };
        assert!(matches!(Directory::build(&file), Err(RecordError::BadAddress { .. })));
        let mut a = user("a", &[]);
        a.catch_all = vec!["e.org".into()];
        let mut b = user("b", &[]);
        b.catch_all = vec!["E.ORG".into()];
        assert!(matches!(
            Directory::build(&UsersFile { users: vec![a, b] }),
            Err(RecordError::SharedCatchAll { .. })
        ));
        assert!(domain_key("[192.0.2.1]").is_err());
        assert!(domain_key("bad domain").is_err());
    }
}
