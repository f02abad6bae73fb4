//! SASL for SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN
//! (draft-murchison-sasl-login) mechanisms, and the base64 of the exchange (RFC 4648 §4).
//!
//! Everything here decodes untrusted client input: every function returns an error that
//! says what was wrong, and never panics.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Longest user name, password or authorization identity accepted, in octets. RFC 4616 §2
/// requires at least 255; more is allowed, and a bound keeps a hostile client from making
/// the server hash megabytes.
pub const MAX_FIELD: usize = 512;

/// A SASL mechanism homing offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616: one message, `[authzid] NUL authcid NUL passwd`.
    Plain,
    /// draft-murchison-sasl-login: the user name, then the password, each asked for with a
    /// `334` challenge. Obsolete but still sent by Outlook and many devices.
    Login,
}

impl Mechanism {
    /// The mechanisms in the order EHLO lists them.
    pub const ALL: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

    /// The mechanism named `name` (case-insensitive, RFC 4422 §3.1); `None` when homing
    /// does not offer it.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A password as the client sent it. `Debug` never shows it, so it cannot reach a log by
/// accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Password {
        Password(s.into())
    }

    /// The password itself, for the hash check only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a PLAIN message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// The identity to act as; `None` when the client left it empty (act as `login`).
    pub authzid: Option<String>,
    /// The authentication identity (RFC 4616 `authcid`): the user name.
    pub login: String,
    pub password: Password,
}

/// Which part of a SASL response was at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    AuthorizationIdentity,
    UserName,
    Password,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::AuthorizationIdentity => "authorization identity",
            Field::UserName => "user name",
            Field::Password => "password",
        })
    }
}

/// Why a SASL response could not be read. The texts go to the client in a `501 5.5.2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the response is not valid base64 (RFC 4648 §4, with padding)")]
    Base64,
    #[error("the PLAIN response must be authzid NUL user NUL password (RFC 4616 §2)")]
    PlainStructure,
    #[error("the {0} is empty")]
    Empty(Field),
    #[error("the {0} is longer than {MAX_FIELD} octets")]
    TooLong(Field),
    #[error("the {0} is not UTF-8")]
    NotUtf8(Field),
    #[error("the {0} contains a NUL or a line break")]
    Control(Field),
}

/// Decodes one base64 response line (RFC 4954 §4). The empty line is the empty response.
/// Strict: padding is required and stray characters, spaces included, are errors.
pub fn decode_base64(line: &str) -> Result<Vec<u8>, SaslError> {
    STANDARD.decode(line.as_bytes()).map_err(|_| SaslError::Base64)
}

/// Encodes a challenge or a client response.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Reads a PLAIN message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`, each UTF-8;
/// authcid and passwd must not be empty.
pub fn parse_plain(message: &[u8]) -> Result<Plain, SaslError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(login), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::PlainStructure);
    };
    let authzid = text(authzid, Field::AuthorizationIdentity, true)?;
    Ok(Plain {
        authzid: Some(authzid).filter(|a| !a.is_empty()),
        login: text(login, Field::UserName, false)?,
        password: Password(text(password, Field::Password, false)?),
    })
}

/// Reads the user name of a LOGIN exchange.
pub fn parse_login_user(message: &[u8]) -> Result<String, SaslError> {
    text(message, Field::UserName, false)
}

/// Reads the password of a LOGIN exchange.
pub fn parse_login_password(message: &[u8]) -> Result<Password, SaslError> {
    text(message, Field::Password, false).map(Password)
}

/// The PLAIN message for these credentials, as a client sends it (before base64).
pub fn encode_plain(authzid: &str, login: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(authzid.len() + login.len() + password.len() + 2);
    m.extend_from_slice(authzid.as_bytes());
    m.push(0);
    m.extend_from_slice(login.as_bytes());
    m.push(0);
    m.extend_from_slice(password.as_bytes());
    m
}

/// One field: bounded, UTF-8, and free of NUL, CR and LF (RFC 4616 `SAFE`; line breaks
/// would let a name forge log lines).
fn text(bytes: &[u8], field: Field, may_be_empty: bool) -> Result<String, SaslError> {
    if bytes.is_empty() && !may_be_empty {
        return Err(SaslError::Empty(field));
    }
    if bytes.len() > MAX_FIELD {
        return Err(SaslError::TooLong(field));
    }
    if bytes.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err(SaslError::Control(field));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::NotUtf8(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_are_case_insensitive() {
        assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::from_name("LoGiN"), Some(Mechanism::Login));
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
        assert_eq!(Mechanism::from_name(""), None);
    }

    #[test]
    fn plain_per_rfc_4616() {
        // RFC 4616 §4 example: "\0tim\0tanstaaftanstaaf".
        let m = decode_base64("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        let p = parse_plain(&m).unwrap();
        assert_eq!((p.authzid, p.login.as_str(), p.password.expose()), (None, "tim", "tanstaaftanstaaf"));
        let p = parse_plain(b"Ursel\0Kurt\0xipj3plmq").unwrap();
        assert_eq!(p.authzid.as_deref(), Some("Ursel"));
        assert_eq!(parse_plain(b"tim\0pw"), Err(SaslError::PlainStructure));
        assert_eq!(parse_plain(b"\0a\0b\0c"), Err(SaslError::PlainStructure));
        assert_eq!(parse_plain(b""), Err(SaslError::PlainStructure));
        assert_eq!(parse_plain(b"\0\0pw"), Err(SaslError::Empty(Field::UserName)));
        assert_eq!(parse_plain(b"\0tim\0"), Err(SaslError::Empty(Field::Password)));
        assert_eq!(parse_plain(b"\0tim\0\xff"), Err(SaslError::NotUtf8(Field::Password)));
        assert_eq!(parse_plain(b"\0ti\nm\0pw"), Err(SaslError::Control(Field::UserName)));
        let long = encode_plain("", &"u".repeat(MAX_FIELD + 1), "pw");
        assert_eq!(parse_plain(&long), Err(SaslError::TooLong(Field::UserName)));
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64(""), Ok(Vec::new()));
        assert_eq!(decode_base64("dGlt"), Ok(b"tim".to_vec()));
        for bad in ["dGl", "dGltÄ", "dG lt", "dGlt=", "=", "*", "dGk=x"] {
            assert_eq!(decode_base64(bad), Err(SaslError::Base64), "{bad:?}");
        }
        assert_eq!(encode_base64(b"Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let p = parse_plain(b"\0tim\0secret").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }
}
