//! SMTP commands (RFC 5321 §4.1.1): parsing what a client sends, and encoding what homing's
//! client sends.

use crate::address::{Address, AddressError, AddressOptions, ReversePath, parse_path, parse_reverse_path};
use crate::params::{MailParams, ParamError, RcptParams};

/// One SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: Address,
        params: RcptParams,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Help,
    StartTls,
    /// RFC 4954 §4: `AUTH mechanism [initial-response]`. The mechanism is as the client
    /// wrote it (the server decides whether it offers it); the initial response is the
    /// base64 text, `=` for an empty response.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// What the command parser accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandOptions {
    /// UTF-8 addresses may appear (RFC 6531). For `MAIL` the `SMTPUTF8` parameter is still
    /// required; for `RCPT` the server sets this only when the transaction's MAIL had it.
    pub utf8: bool,
}

/// Which path a path error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    Sender,
    Recipient,
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("empty command line")]
    Empty,
    #[error("the command line is not valid UTF-8")]
    NotUtf8,
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// The verb was understood; its arguments were not.
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Param(#[from] ParamError),
    #[error("{error}")]
    Path { role: PathRole, error: AddressError },
}

fn syntax(msg: impl Into<String>) -> CommandError {
    CommandError::Syntax(msg.into())
}

/// Parses one command line without its CRLF.
///
/// Verbs are case-insensitive (RFC 5321 §2.4).
pub fn parse_command(line: &[u8], opts: CommandOptions) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    if line.trim().is_empty() {
        return Err(CommandError::Empty);
    }
    let (verb, rest) = match line.split_once(' ') {
        Some((v, r)) => (v, r),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let arg = rest.trim();
    let no_arg = |cmd: Command| {
        if arg.is_empty() {
            Ok(cmd)
        } else {
            Err(syntax(format!("{verb} takes no arguments; send just \"{verb}\"")))
        }
    };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            // LENIENT: any single token is accepted as the client's name; RFC 5321 §4.1.4
            // forbids refusing a session over a name that does not match.
            let name = arg.split(' ').next().unwrap_or_default();
            if name.is_empty() || name.chars().any(|c| c.is_control()) {
                return Err(syntax(format!("{verb} needs your hostname, e.g. \"{verb} mail.example.com\"")));
            }
            Ok(if verb == "EHLO" { Command::Ehlo(name.to_string()) } else { Command::Helo(name.to_string()) })
        }
        "MAIL" => parse_mail(rest, opts),
        "RCPT" => parse_rcpt(rest, opts),
        "DATA" => no_arg(Command::Data),
        "RSET" => no_arg(Command::Rset),
        "QUIT" => no_arg(Command::Quit),
        "STARTTLS" => no_arg(Command::StartTls),
        // RFC 5321 §4.1.1.9 and §4.1.1.8: arguments are allowed and ignored.
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" if arg.is_empty() => Err(syntax("VRFY needs a user name or address")),
        "VRFY" => Ok(Command::Vrfy(arg.to_string())),
        "AUTH" => parse_auth(arg),
        _ => Err(CommandError::Unknown(verb.chars().take(32).collect())),
    }
}

/// Strips `FROM:`/`TO:` case-insensitively.
/// LENIENT: spaces after the colon (`MAIL FROM: <a@b>`), sent by many clients.
fn after_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword).then(|| rest[keyword.len()..].trim_start_matches(' '))
}

/// Splits the path from the parameters. A quoted local part may contain `>` and spaces.
fn split_path(s: &str) -> (&str, &str) {
    if !s.starts_with('<') {
        return match s.split_once(' ') {
            Some((p, r)) => (p, r),
            None => (s, ""),
        };
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return (&s[..=i], &s[i + 1..]),
            _ => {}
        }
    }
    (s, "")
}

/// Parameters must be separated from the path by a space.
fn params_part(rest: &str) -> Result<&str, CommandError> {
    match rest.strip_prefix(' ') {
        Some(p) => Ok(p),
        None if rest.is_empty() => Ok(""),
        None => Err(syntax("parameters must follow the path after a space")),
    }
}

fn parse_mail(rest: &str, opts: CommandOptions) -> Result<Command, CommandError> {
    let s = after_keyword(rest, "FROM:").ok_or_else(|| syntax("write MAIL FROM:<you@example.com>"))?;
    let (path, rest) = split_path(s);
    let params = MailParams::parse(params_part(rest)?)?;
    let aopts = AddressOptions { utf8: opts.utf8 && params.smtputf8 };
    let from = parse_reverse_path(path, aopts)
        .map_err(|error| CommandError::Path { role: PathRole::Sender, error })?;
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(rest: &str, opts: CommandOptions) -> Result<Command, CommandError> {
    let s = after_keyword(rest, "TO:").ok_or_else(|| syntax("write RCPT TO:<recipient@example.com>"))?;
    let (path, rest) = split_path(s);
    let params = RcptParams::parse(params_part(rest)?)?;
    let to = parse_path(path, AddressOptions { utf8: opts.utf8 })
        .map_err(|error| CommandError::Path { role: PathRole::Recipient, error })?;
    Ok(Command::Rcpt { to, params })
}

/// RFC 4954 §4 `AUTH mechanism [initial-response]`; a mechanism name is 1 to 20 of
/// `A-Z 0-9 - _` (RFC 4422 §3.1), case-insensitive.
fn parse_auth(arg: &str) -> Result<Command, CommandError> {
    let mut words = arg.split(' ').filter(|w| !w.is_empty());
    let (Some(mechanism), initial, None) = (words.next(), words.next(), words.next()) else {
        return Err(syntax(
            "write AUTH PLAIN or AUTH LOGIN, optionally followed by the base64 initial response",
        ));
    };
    let name_ok = mechanism.len() <= 20
        && mechanism.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(syntax("the AUTH mechanism name is not a SASL name like PLAIN or LOGIN"));
    }
    Ok(Command::Auth { mechanism: mechanism.to_string(), initial: initial.map(str::to_string) })
}

impl Command {
    /// The command as a client sends it, ending in CRLF. Parameters are written only when
    /// they differ from their defaults; ENVID and ORCPT are xtext-encoded.
    pub fn to_wire(&self) -> Vec<u8> {
        let line = match self {
            Command::Ehlo(name) => format!("EHLO {name}"),
            Command::Helo(name) => format!("HELO {name}"),
            Command::Mail { from, params } => format!("MAIL FROM:{from}{}", params.to_wire()),
            Command::Rcpt { to, params } => format!("RCPT TO:<{to}>{}", params.to_wire()),
            Command::Data => "DATA".into(),
            Command::Rset => "RSET".into(),
            Command::Noop => "NOOP".into(),
            Command::Quit => "QUIT".into(),
            Command::Vrfy(s) => format!("VRFY {s}"),
            Command::Help => "HELP".into(),
            Command::StartTls => "STARTTLS".into(),
            Command::Auth { mechanism, initial: Some(r) } => format!("AUTH {mechanism} {r}"),
            Command::Auth { mechanism, initial: None } => format!("AUTH {mechanism}"),
        };
        let mut out = line.replace(['\r', '\n'], " ").into_bytes();
        out.extend_from_slice(b"\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Body, Notify, Orcpt, Ret};

    const OPTS: CommandOptions = CommandOptions { utf8: true };

    fn parse(s: &str) -> Result<Command, CommandError> {
        parse_command(s.as_bytes(), OPTS)
    }

    #[test]
    fn simple_verbs_any_case() {
        assert_eq!(parse("ehlo Client.Example"), Ok(Command::Ehlo("Client.Example".into())));
        assert_eq!(parse("HELO x"), Ok(Command::Helo("x".into())));
        assert_eq!(parse("DATA"), Ok(Command::Data));
        assert_eq!(parse("rset "), Ok(Command::Rset));
        assert_eq!(parse("NOOP anything"), Ok(Command::Noop));
        assert_eq!(parse("Quit"), Ok(Command::Quit));
        assert_eq!(parse("HELP mail"), Ok(Command::Help));
        assert_eq!(parse("VRFY root"), Ok(Command::Vrfy("root".into())));
        assert_eq!(parse("STARTTLS"), Ok(Command::StartTls));
    }

    #[test]
    fn auth_per_rfc_4954() {
        let auth =
            |m: &str, i: Option<&str>| Command::Auth { mechanism: m.into(), initial: i.map(Into::into) };
        assert_eq!(parse("AUTH PLAIN"), Ok(auth("PLAIN", None)));
        assert_eq!(parse("auth login dGlt"), Ok(auth("login", Some("dGlt"))));
        assert_eq!(parse("AUTH PLAIN ="), Ok(auth("PLAIN", Some("="))));
        assert_eq!(parse("AUTH CRAM-MD5"), Ok(auth("CRAM-MD5", None)));
        assert_eq!(auth("PLAIN", Some("AGEAYg==")).to_wire(), b"AUTH PLAIN AGEAYg==\r\n");
        for bad in ["AUTH", "AUTH PLAIN a b", "AUTH PL/AIN", "AUTH ABCDEFGHIJKLMNOPQRSTU"] {
            assert!(matches!(parse(bad), Err(CommandError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn mail_and_rcpt() {
        let c = parse("MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME").unwrap();
        let Command::Mail { from, params } = &c else { panic!("{c:?}") };
        assert_eq!(from.to_string(), "<a@b.example>");
        assert_eq!((params.size, params.body), (Some(10), Body::EightBitMime));
        assert_eq!(c.to_wire(), b"MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME\r\n");
        assert_eq!(
            parse("mail from: <>"),
            Ok(Command::Mail { from: ReversePath::Null, params: MailParams::default() })
        );
        let c = parse("RCPT TO:<\"x > y\"@b.example> NOTIFY=NEVER").unwrap();
        let Command::Rcpt { to, params } = &c else { panic!("{c:?}") };
        assert_eq!(to.local_part, "x > y");
        assert!(params.notify.is_never());
        assert_eq!(c.to_wire(), b"RCPT TO:<\"x > y\"@b.example> NOTIFY=NEVER\r\n");
    }

    #[test]
    fn client_encoding_of_dsn_params() {
        let to = parse_path("<u@d.example>", AddressOptions::default()).unwrap();
        let c = Command::Rcpt {
            to,
            params: RcptParams {
                notify: Notify { success: true, failure: true, delay: false },
                orcpt: Some(Orcpt { addr_type: "rfc822".into(), addr: "u+1@d.example".into() }),
            },
        };
        assert_eq!(
            c.to_wire(),
            b"RCPT TO:<u@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+2B1@d.example\r\n"
        );
        let c = Command::Mail {
            from: ReversePath::Null,
            params: MailParams { ret: Some(Ret::Full), envid: Some("id 1".into()), ..MailParams::default() },
        };
        assert_eq!(c.to_wire(), b"MAIL FROM:<> RET=FULL ENVID=id+201\r\n");
        assert_eq!(parse_command(&c.to_wire()[..c.to_wire().len() - 2], OPTS), Ok(c));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(""), Err(CommandError::Empty));
        assert_eq!(parse_command(b"\xff", OPTS), Err(CommandError::NotUtf8));
        assert_eq!(parse("FROB x"), Err(CommandError::Unknown("FROB".into())));
        assert!(matches!(parse("EHLO"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("DATA now"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("MAIL TO:<a@b>"), Err(CommandError::Syntax(_))));
        assert!(matches!(parse("MAIL FROM:<a@b>SIZE=1"), Err(CommandError::Syntax(_))));
        assert!(matches!(
            parse("MAIL FROM:<a@b> FOO=1"),
            Err(CommandError::Param(ParamError::Unsupported(_)))
        ));
        assert!(matches!(parse("RCPT TO:<a@@b>"), Err(CommandError::Path { role: PathRole::Recipient, .. })));
    }

    #[test]
    fn smtputf8_needs_the_parameter_on_mail() {
        let err = parse("MAIL FROM:<jö@x.de>").unwrap_err();
        assert_eq!(err, CommandError::Path { role: PathRole::Sender, error: AddressError::Utf8NotAllowed });
        assert!(parse("MAIL FROM:<jö@x.de> SMTPUTF8").is_ok());
        let ascii = CommandOptions { utf8: false };
        assert!(parse_command("MAIL FROM:<jö@x.de> SMTPUTF8".as_bytes(), ascii).is_err());
        assert!(parse_command("RCPT TO:<jö@x.de>".as_bytes(), ascii).is_err());
    }
}
