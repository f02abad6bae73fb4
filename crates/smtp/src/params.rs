//! ESMTP parameters of `MAIL FROM` and `RCPT TO` (RFC 5321 §4.1.2 `Mail-parameters`):
//! SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461),
//! and the xtext encoding (RFC 3461 §4).

use std::fmt::Write as _;

/// RFC 3461 §4.4: ENVID is at most 100 characters.
pub const MAX_ENVID: usize = 100;
/// RFC 3461 §4.2: ORCPT's address is at most 500 characters.
pub const MAX_ORCPT: usize = 500;

/// The body type of RFC 6152 §2 (`BODY=`). Absent means 7BIT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

/// How much of the message a failure DSN returns (RFC 3461 §4.3 `RET=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    Full,
    Headers,
}

/// Parameters of `MAIL FROM`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MailParams {
    /// RFC 1870 §3: the client's estimate of the message size in octets.
    pub size: Option<u64>,
    pub body: Body,
    /// RFC 6531 §3.4: the transaction carries UTF-8 addresses or headers.
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// RFC 3461 §4.4 envelope identifier, xtext-decoded.
    pub envid: Option<String>,
    /// RFC 4954 §5 `AUTH=`: who the client says submitted the message, xtext-decoded (`<>`
    /// for unknown). Accepted so clients that send it are not refused; homing does not trust
    /// it (the session's own AUTH decides) and does not pass it on.
    pub auth: Option<String>,
}

/// When to send a DSN for a recipient (RFC 3461 §4.1 `NOTIFY=`). All false means NEVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify { success: false, failure: false, delay: false };

    pub fn is_never(&self) -> bool {
        *self == Self::NEVER
    }
}

/// Without NOTIFY the server behaves as for `NOTIFY=FAILURE,DELAY` (RFC 3461 §4.1).
impl Default for Notify {
    fn default() -> Self {
        Notify { success: false, failure: true, delay: true }
    }
}

/// The original recipient (RFC 3461 §4.2 `ORCPT=addr-type;xtext`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orcpt {
    /// Usually `rfc822` (or `utf-8`, RFC 6533).
    pub addr_type: String,
    /// The xtext-decoded address.
    pub addr: String,
}

/// Parameters of `RCPT TO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RcptParams {
    pub notify: Notify,
    pub orcpt: Option<Orcpt>,
}

/// Why a parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Maps to `501 5.5.4`.
    #[error("{0}")]
    Syntax(String),
    /// A parameter this server does not implement; maps to `555 5.5.4` (RFC 5321 §4.1.1.11).
    #[error("{0}")]
    Unsupported(String),
}

fn syntax(msg: impl Into<String>) -> ParamError {
    ParamError::Syntax(msg.into())
}

/// Splits `KEY=value` pairs (RFC 5321 §4.1.2 `esmtp-param`), uppercasing keys.
fn split_params(s: &str) -> Result<Vec<(String, Option<&str>)>, ParamError> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    // LENIENT: several spaces between parameters.
    for p in s.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        let key_ok = key.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !key_ok {
            return Err(syntax(format!("{p:?} is not a valid KEYWORD=value parameter")));
        }
        // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under RFC 6531 §3.3.
        if let Some(v) = value
            && (v.is_empty() || v.chars().any(|c| c.is_ascii_control() || c == '='))
        {
            return Err(syntax(format!("parameter {key} has an empty or invalid value")));
        }
        let key = key.to_ascii_uppercase();
        if out.iter().any(|(k, _)| *k == key) {
            return Err(syntax(format!("parameter {key} is given twice")));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn need<'a>(key: &str, v: Option<&'a str>) -> Result<&'a str, ParamError> {
    v.ok_or_else(|| syntax(format!("parameter {key} needs a value ({key}=...)")))
}

fn no_value(key: &str, v: Option<&str>) -> Result<(), ParamError> {
    match v {
        Some(_) => Err(syntax(format!("parameter {key} takes no value"))),
        None => Ok(()),
    }
}

impl MailParams {
    /// Parses the parameters after `MAIL FROM:<path>`.
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        let mut p = MailParams::default();
        for (key, v) in split_params(s)? {
            match key.as_str() {
                "SIZE" => {
                    let v = need(&key, v)?;
                    // RFC 1870 §3: size-value = 1*20DIGIT
                    let n = (v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| v.parse::<u64>().ok())
                        .flatten()
                        .ok_or_else(|| syntax(format!("SIZE={v} is not a number of octets")))?;
                    p.size = Some(n);
                }
                "BODY" => {
                    let v = need(&key, v)?;
                    p.body = if v.eq_ignore_ascii_case("7BIT") {
                        Body::SevenBit
                    } else if v.eq_ignore_ascii_case("8BITMIME") {
                        Body::EightBitMime
                    } else if v.eq_ignore_ascii_case("BINARYMIME") {
                        // RFC 3030 needs CHUNKING, which this server does not offer.
                        return Err(ParamError::Unsupported("BODY=BINARYMIME".into()));
                    } else {
                        return Err(syntax(format!("BODY={v} is not 7BIT or 8BITMIME")));
                    };
                }
                "SMTPUTF8" => {
                    no_value(&key, v)?;
                    p.smtputf8 = true;
                }
                "RET" => {
                    let v = need(&key, v)?;
                    p.ret = Some(if v.eq_ignore_ascii_case("FULL") {
                        Ret::Full
                    } else if v.eq_ignore_ascii_case("HDRS") {
                        Ret::Headers
                    } else {
                        return Err(syntax(format!("RET={v} is not FULL or HDRS")));
                    });
                }
                "ENVID" => {
                    let id = xtext_decode(need(&key, v)?)
                        .map_err(|e| syntax(format!("ENVID is not valid xtext: {e}")))?;
                    if id.chars().count() > MAX_ENVID {
                        return Err(syntax(format!("ENVID is longer than {MAX_ENVID} characters")));
                    }
                    p.envid = Some(id);
                }
                "AUTH" => {
                    let v = xtext_decode(need(&key, v)?)
                        .map_err(|e| syntax(format!("AUTH= is not valid xtext: {e}")))?;
                    if v.len() > 500 {
                        return Err(syntax("AUTH= is longer than 500 characters".to_string()));
                    }
                    p.auth = Some(v);
                }
                _ => return Err(ParamError::Unsupported(key)),
            }
        }
        Ok(p)
    }

    /// The parameters as sent after `MAIL FROM:<path>`, each with a leading space; only the
    /// ones that differ from the defaults.
    pub fn to_wire(&self) -> String {
        let mut s = String::new();
        if let Some(n) = self.size {
            let _ = write!(s, " SIZE={n}");
        }
        if self.body == Body::EightBitMime {
            s.push_str(" BODY=8BITMIME");
        }
        if self.smtputf8 {
            s.push_str(" SMTPUTF8");
        }
        match self.ret {
            Some(Ret::Full) => s.push_str(" RET=FULL"),
            Some(Ret::Headers) => s.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(id) = &self.envid {
            let _ = write!(s, " ENVID={}", xtext_encode(id));
        }
        if let Some(a) = &self.auth {
            let _ = write!(s, " AUTH={}", xtext_encode(a));
        }
        s
    }
}

impl RcptParams {
    /// Parses the parameters after `RCPT TO:<path>`.
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        let mut p = RcptParams::default();
        for (key, v) in split_params(s)? {
            match key.as_str() {
                "NOTIFY" => p.notify = parse_notify(need(&key, v)?)?,
                "ORCPT" => {
                    let v = need(&key, v)?;
                    let (t, addr) = v.split_once(';').ok_or_else(|| {
                        syntax("ORCPT must be addr-type;address, e.g. ORCPT=rfc822;user@example.com")
                    })?;
                    let type_ok = t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    if !type_ok {
                        return Err(syntax(format!("ORCPT address type {t:?} is not valid")));
                    }
                    let addr =
                        xtext_decode(addr).map_err(|e| syntax(format!("ORCPT is not valid xtext: {e}")))?;
                    if addr.is_empty() || addr.len() > MAX_ORCPT {
                        return Err(syntax(format!("ORCPT address must be 1 to {MAX_ORCPT} characters")));
                    }
                    p.orcpt = Some(Orcpt { addr_type: t.to_string(), addr });
                }
                _ => return Err(ParamError::Unsupported(key)),
            }
        }
        Ok(p)
    }

    /// The parameters as sent after `RCPT TO:<path>`, each with a leading space.
    pub fn to_wire(&self) -> String {
        let mut s = String::new();
        if self.notify != Notify::default() {
            let n = self.notify;
            let mut parts = Vec::new();
            if n.is_never() {
                parts.push("NEVER");
            }
            for (on, name) in [(n.success, "SUCCESS"), (n.failure, "FAILURE"), (n.delay, "DELAY")] {
                if on {
                    parts.push(name);
                }
            }
            let _ = write!(s, " NOTIFY={}", parts.join(","));
        }
        if let Some(o) = &self.orcpt {
            let _ = write!(s, " ORCPT={};{}", o.addr_type, xtext_encode(&o.addr));
        }
        s
    }
}

/// RFC 3461 §4.1: `NEVER` alone, or a comma list of SUCCESS, FAILURE, DELAY.
fn parse_notify(v: &str) -> Result<Notify, ParamError> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::NEVER);
    }
    let mut n = Notify::NEVER;
    for item in v.split(',') {
        let flag = match item.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut n.success,
            "FAILURE" => &mut n.failure,
            "DELAY" => &mut n.delay,
            "NEVER" => return Err(syntax("NOTIFY=NEVER cannot be combined with other values")),
            _ => {
                return Err(syntax(format!("NOTIFY={v} must be NEVER or a list of SUCCESS, FAILURE, DELAY")));
            }
        };
        *flag = true;
    }
    Ok(n)
}

/// Why a string is not xtext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XtextError {
    #[error("character {0:?} must be written as +XX")]
    BadChar(char),
    #[error("'+' must be followed by two hex digits")]
    BadHex,
    #[error("the decoded value is not UTF-8")]
    NotUtf8,
}

/// Decodes xtext (RFC 3461 §4): `+XX` is a hex-encoded octet, other characters are
/// literal printable ASCII except `+` and `=`.
/// LENIENT: lowercase hex digits are accepted.
pub fn xtext_decode(s: &str) -> Result<String, XtextError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => {
                let hex = |b: Option<u8>| b.and_then(|b| (b as char).to_digit(16)).ok_or(XtextError::BadHex);
                let hi = hex(bytes.next())?;
                let lo = hex(bytes.next())?;
                out.push((hi * 16 + lo) as u8);
            }
            b'!'..=b'~' if b != b'=' => out.push(b),
            _ => {
                let c = s.chars().find(|c| !c.is_ascii_graphic() || *c == '=').unwrap_or('?');
                return Err(XtextError::BadChar(c));
            }
        }
    }
    String::from_utf8(out).map_err(|_| XtextError::NotUtf8)
}

/// Encodes `s` as xtext (RFC 3461 §4), escaping `+`, `=`, and every octet outside 33–126.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_round_trips() {
        for s in ["plain", "a+b=c", "sp ace", "ünï", ""] {
            assert_eq!(xtext_decode(&xtext_encode(s)).unwrap(), s);
        }
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext_decode("x+2b"), Ok("x+".into()));
        assert_eq!(xtext_decode("x+2"), Err(XtextError::BadHex));
        assert_eq!(xtext_decode("a=b"), Err(XtextError::BadChar('=')));
        assert_eq!(xtext_decode("+FF"), Err(XtextError::NotUtf8));
    }

    #[test]
    fn mail_params() {
        let p = MailParams::parse("size=1000  BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1").unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Body::EightBitMime);
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Headers));
        assert_eq!(p.envid.as_deref(), Some("QQ+1"));
        assert_eq!(p.to_wire(), " SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1");
        assert_eq!(MailParams::parse("").unwrap(), MailParams::default());
    }

    #[test]
    fn mail_auth_param_per_rfc_4954() {
        assert_eq!(MailParams::parse("AUTH=<>").unwrap().auth.as_deref(), Some("<>"));
        let p = MailParams::parse("AUTH=tim+2Bx@example.org").unwrap();
        assert_eq!(p.auth.as_deref(), Some("tim+x@example.org"));
        assert_eq!(p.to_wire(), " AUTH=tim+2Bx@example.org");
        assert!(matches!(MailParams::parse("AUTH"), Err(ParamError::Syntax(_))));
        assert!(matches!(MailParams::parse("AUTH=+zz"), Err(ParamError::Syntax(_))));
    }

    #[test]
    fn mail_param_errors() {
        let unsupported = ["X-FOO", "BODY=BINARYMIME"];
        for s in unsupported {
            assert!(matches!(MailParams::parse(s), Err(ParamError::Unsupported(_))), "{s}");
        }
        let syntax = [
            "SIZE=abc",
            "SIZE",
            "SIZE=123456789012345678901",
            "SIZE=1 SIZE=2",
            "BODY=9BIT",
            "SMTPUTF8=yes",
            "RET=ALL",
            "=x",
            "A=",
        ];
        for s in syntax {
            assert!(matches!(MailParams::parse(s), Err(ParamError::Syntax(_))), "{s}");
        }
        let long = format!("ENVID={}", "a".repeat(101));
        assert!(matches!(MailParams::parse(&long), Err(ParamError::Syntax(_))));
    }

    #[test]
    fn rcpt_params() {
        let p = RcptParams::parse("NOTIFY=SUCCESS,delay ORCPT=rfc822;a+2Bb@x.org").unwrap();
        assert_eq!(p.notify, Notify { success: true, failure: false, delay: true });
        let o = p.orcpt.clone().unwrap();
        assert_eq!((o.addr_type.as_str(), o.addr.as_str()), ("rfc822", "a+b@x.org"));
        assert_eq!(p.to_wire(), " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@x.org");
        let d = RcptParams::parse("").unwrap();
        assert_eq!(d.notify, Notify { success: false, failure: true, delay: true });
        assert_eq!(d.to_wire(), "");
        let never = RcptParams::parse("NOTIFY=NEVER").unwrap();
        assert!(never.notify.is_never());
        assert_eq!(never.to_wire(), " NOTIFY=NEVER");
        for bad in ["NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES", "ORCPT=rfc822", "ORCPT=;x"] {
            assert!(matches!(RcptParams::parse(bad), Err(ParamError::Syntax(_))), "{bad}");
        }
        assert!(matches!(RcptParams::parse("SIZE=1"), Err(ParamError::Unsupported(_))));
    }
}
