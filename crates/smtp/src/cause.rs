//! The one mapping from why homing's server answers to what it answers: reply code,
//! enhanced status code (RFC 3463, IANA "Enumerated Status Codes", RFC 2034) and a text
//! that tells the client what to fix. No other file in this crate writes reply text.

use crate::address::AddressError;
use crate::command::{CommandError, PathRole};
use crate::params::ParamError;
use crate::reply::{EnhancedStatus, Reply};

/// Why the server replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// RFC 5321 §4.3.1 opening greeting. No enhanced status (RFC 2034 §3).
    Greeting {
        hostname: String,
    },
    /// RFC 5321 §4.1.1.1 EHLO reply: greeting line then one extension keyword per line.
    EhloOk {
        hostname: String,
        client: String,
        keywords: Vec<String>,
    },
    /// RFC 5321 §4.1.1.1 HELO reply.
    HeloOk {
        hostname: String,
        client: String,
    },
    /// 221 after QUIT (RFC 5321 §4.1.1.10).
    Closing {
        hostname: String,
    },
    SenderOk,
    RecipientOk,
    /// RFC 5321 §4.1.1.4: 354 after DATA.
    StartData,
    Queued {
        id: String,
    },
    /// NOOP, RSET.
    Ok,
    /// RFC 5321 §3.5.3: VRFY without disclosing anything.
    VrfyCannotVerify,
    Help,
    /// RFC 3207 §4: ready to start TLS.
    StartTlsReady,
    /// The command line itself could not be read.
    SyntaxError {
        detail: String,
    },
    UnknownCommand {
        verb: String,
    },
    /// The arguments of a known command are malformed.
    ParamSyntax {
        detail: String,
    },
    /// RFC 5321 §4.1.1.11: a MAIL/RCPT parameter this server does not implement.
    ParamUnsupported {
        param: String,
    },
    BadSequence {
        detail: String,
    },
    LineTooLong {
        limit: usize,
    },
    /// RFC 5321 §4.5.3.1.8.
    TooManyRecipients {
        limit: usize,
    },
    /// RFC 1870 §6.
    MessageTooBig {
        limit: u64,
    },
    /// RFC 5321 §2.3.8: CR and LF only as CRLF; refusing closes SMTP smuggling.
    BareLineEnding,
    TooManyBadCommands {
        limit: u32,
    },
    TooManyCommands {
        limit: u32,
    },
    /// The client sent more pipelined input than the server buffers before replying.
    TooMuchPipelinedInput {
        limit: usize,
    },
    /// RFC 5321 §4.5.3.2 timeouts.
    Timeout,
    ShuttingDown,
    /// Every session slot is taken (RFC 5321 §3.8: a busy server may answer 421 at once).
    TooManySessions {
        limit: usize,
    },
    /// STARTTLS when it is not offered (RFC 3207 §4 lists no code; an unoffered command is
    /// "not implemented", RFC 5321 §4.2.4).
    TlsNotAvailable,
    /// RFC 3207 §4: TLS is offered but cannot start now (e.g. the certificate failed to load).
    TlsTemporarilyUnavailable,
    TlsAlreadyActive,
    SpoolUnavailable {
        detail: String,
    },
    /// RFC 5321 §3.6.2: not an open relay.
    RelayDenied {
        domain: String,
    },
    /// RFC 5321 §6.3: too many Received fields.
    MailLoop {
        hops: usize,
        limit: usize,
    },
    BadSender {
        detail: String,
    },
    BadRecipient {
        detail: String,
    },
    /// The recipient does not exist here.
    NoSuchUser {
        address: String,
    },
    /// The recipient is on homing's suppression list: mail to it failed for good before, or
    /// someone put it there. Refused at RCPT so the sender learns at once (RFC 5321 §4.1.1.3).
    Suppressed {
        address: String,
        /// When it went on the list, `YYYY-MM-DD` (UTC).
        since: String,
        by: SuppressedBy,
        /// Why, in a few words, e.g. `userunknown: <cause>`; shortened to fit the line.
        detail: String,
    },
    /// DATA without an accepted recipient (RFC 5321 §3.3, RFC 2920 §3.1).
    NoValidRecipients,
    /// RFC 6531 §3.6.3: UTF-8 address without SMTPUTF8.
    Utf8NotAllowed,
    LocalError {
        detail: String,
    },
    /// RFC 4954 §4: a `334` server challenge, base64 (empty for "send your response").
    AuthChallenge {
        challenge: String,
    },
    /// RFC 4954 §6: `235 2.7.0`.
    AuthSucceeded,
    /// RFC 4954 §6: `535 5.7.8`. The text never says which of user name or password was
    /// wrong, so a client cannot find out which users exist.
    AuthFailed,
    /// RFC 4616 §2: PLAIN with an authorization identity other than the user's own; homing
    /// lets no user act as another.
    AuthzidRefused,
    /// RFC 4954 §4: the client answered a challenge with `*`.
    AuthCancelled,
    /// RFC 4954 §4: a response that is not base64, or not what the mechanism expects.
    AuthMalformed {
        detail: String,
    },
    /// RFC 4954 §6: a response line longer than the server reads (`500 5.5.6`).
    AuthLineTooLong {
        limit: usize,
    },
    /// RFC 4954 §4: a mechanism this server does not offer.
    AuthMechanismUnknown {
        name: String,
    },
    /// RFC 4954 §6: AUTH before TLS (`538 5.7.11`); homing never takes passwords in clear.
    AuthNeedsTls,
    /// AUTH on a listener that does not offer it (an MX port): "not implemented", as for
    /// STARTTLS (RFC 5321 §4.2.4).
    AuthNotAvailable,
    /// RFC 4954 §4: a second AUTH after a successful one.
    AlreadyAuthenticated,
    /// RFC 4954 §4: AUTH inside a mail transaction.
    AuthInTransaction,
    /// RFC 4954 §6 `530 5.7.0`: MAIL on a submission port before AUTH (RFC 6409 §4.3 lets a
    /// submission server require it, and homing does). `tls`: TLS is already active.
    AuthRequired {
        tls: bool,
    },
    /// RFC 4954 §6 `454 4.7.0`: the credentials could not be checked now (e.g. the user
    /// store is unreadable).
    AuthTemporaryFailure {
        detail: String,
    },
}

/// How an address came onto the suppression list; decides the enhanced status code of
/// [`Cause::Suppressed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuppressedBy {
    /// A hard failure that said the address is dead; `status` is the one that failure
    /// reported (e.g. `5.1.1`). A `5.1.x` or `5.2.1` is repeated, anything else is `5.7.1`.
    Bounce { status: Option<EnhancedStatus> },
    /// The recipient complained (a feedback report): policy, so `5.7.1`.
    Complaint,
    /// An operator added it by hand: policy, so `5.7.1`.
    Operator,
}

/// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its code and CRLF. The
/// longest prefix homing writes is `550 5.1.10 `, 11 octets.
const MAX_REPLY_TEXT: usize = 512 - 2 - 11;

const fn st(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    Some(EnhancedStatus::new(class, subject, detail))
}

impl Cause {
    /// The reply for this cause.
    pub fn reply(&self) -> Reply {
        use Cause::*;
        match self {
            Greeting { hostname } => Reply::new(220, None, format!("{hostname} ESMTP homing")),
            EhloOk { hostname, client, keywords } => {
                let mut lines = vec![format!("{hostname} greets {client}")];
                lines.extend(keywords.iter().cloned());
                Reply::multiline(250, None, lines)
            }
            HeloOk { hostname, client } => Reply::new(250, None, format!("{hostname} greets {client}")),
            Closing { hostname } => Reply::new(221, st(2, 0, 0), format!("{hostname} closing connection")),
            SenderOk => Reply::new(250, st(2, 1, 0), "Sender OK"),
            RecipientOk => Reply::new(250, st(2, 1, 5), "Recipient OK"),
            // RFC 2034 does not require a status on 354, and most servers send none.
            StartData => Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"),
            Queued { id } => Reply::new(250, st(2, 0, 0), format!("Ok: queued as {id}")),
            Ok => Reply::new(250, st(2, 0, 0), "Ok"),
            VrfyCannotVerify => Reply::new(
                252,
                st(2, 5, 0),
                "Cannot VRFY the user; send a message and it will be delivered or bounced",
            ),
            Help => Reply::new(
                214,
                st(2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH; see RFC 5321",
            ),
            StartTlsReady => Reply::new(220, st(2, 0, 0), "Ready to start TLS"),
            SyntaxError { detail } => Reply::new(500, st(5, 5, 2), format!("Syntax error: {detail}")),
            UnknownCommand { verb } => Reply::new(
                500,
                st(5, 5, 1),
                format!("Command {verb:?} not recognized; send HELP for the list of commands"),
            ),
            ParamSyntax { detail } => {
                Reply::new(501, st(5, 5, 4), format!("Syntax error in arguments: {detail}"))
            }
            ParamUnsupported { param } => Reply::new(
                555,
                st(5, 5, 4),
                format!("Parameter {param} is not supported by this server; send the command without it"),
            ),
            BadSequence { detail } => {
                Reply::new(503, st(5, 5, 1), format!("Bad sequence of commands: {detail}"))
            }
            LineTooLong { limit } => Reply::new(
                500,
                st(5, 5, 2),
                format!("Line too long: command lines may be at most {limit} octets"),
            ),
            TooManyRecipients { limit } => Reply::new(
                452,
                st(4, 5, 3),
                format!("Too many recipients: at most {limit} per message; send the rest in another message"),
            ),
            MessageTooBig { limit } => Reply::new(
                552,
                st(5, 3, 4),
                format!("Message too big: this server accepts at most {limit} octets"),
            ),
            BareLineEnding => Reply::new(
                554,
                st(5, 5, 2),
                "Bare CR or LF in message data: lines must end with CRLF (RFC 5321 §2.3.8); closing connection",
            ),
            TooManyBadCommands { limit } => Reply::new(
                421,
                st(4, 7, 0),
                format!("Too many errors (more than {limit}) in this session; closing connection"),
            ),
            TooManyCommands { limit } => Reply::new(
                421,
                st(4, 7, 0),
                format!(
                    "Too many commands (more than {limit}) in one session; closing connection, reconnect to continue"
                ),
            ),
            TooMuchPipelinedInput { limit } => Reply::new(
                421,
                st(4, 7, 0),
                format!(
                    "Too much pipelined input (more than {limit} octets unanswered); wait for replies; closing connection"
                ),
            ),
            Timeout => Reply::new(421, st(4, 4, 2), "Timeout waiting for input; closing connection"),
            ShuttingDown => {
                Reply::new(421, st(4, 3, 2), "Server shutting down; closing connection, try again later")
            }
            TooManySessions { limit } => Reply::new(
                421,
                st(4, 3, 2),
                format!(
                    "Too many connections ({limit}) right now; closing connection, try again in a few minutes"
                ),
            ),
            TlsNotAvailable => Reply::new(502, st(5, 5, 1), "STARTTLS is not offered by this server"),
            TlsTemporarilyUnavailable => {
                Reply::new(454, st(4, 7, 0), "TLS not available due to a temporary reason; try again later")
            }
            TlsAlreadyActive => Reply::new(503, st(5, 5, 1), "TLS is already active on this connection"),
            SpoolUnavailable { detail } => Reply::new(
                452,
                st(4, 3, 1),
                format!("Insufficient system storage ({detail}); try again later"),
            ),
            RelayDenied { domain } => Reply::new(
                554,
                st(5, 7, 1),
                format!(
                    "Relay access denied: {domain} is not a domain this server accepts mail for; authenticate or send through your own provider"
                ),
            ),
            MailLoop { hops, limit } => Reply::new(
                554,
                st(5, 4, 6),
                format!(
                    "Mail loop: the message has {hops} Received header fields, more than the {limit} allowed"
                ),
            ),
            BadSender { detail } => Reply::new(553, st(5, 1, 7), format!("Bad sender address: {detail}")),
            BadRecipient { detail } => {
                Reply::new(553, st(5, 1, 3), format!("Bad recipient address: {detail}"))
            }
            NoSuchUser { address } => Reply::new(
                550,
                st(5, 1, 1),
                format!("No such user here: <{address}>; check the address for typos"),
            ),
            Suppressed { address, since, by, detail } => suppressed(address, since, by, detail),
            NoValidRecipients => Reply::new(
                554,
                st(5, 5, 1),
                "No valid recipients: send at least one RCPT TO that is accepted before DATA",
            ),
            Utf8NotAllowed => Reply::new(
                553,
                st(5, 6, 7),
                "Non-ASCII address needs SMTPUTF8: add SMTPUTF8 to MAIL FROM (RFC 6531)",
            ),
            LocalError { detail } => {
                Reply::new(451, st(4, 3, 0), format!("Local error in processing ({detail}); try again later"))
            }
            // RFC 4954 §4: a challenge is base64 only, without an enhanced status code.
            AuthChallenge { challenge } => Reply::new(334, None, challenge.clone()),
            AuthSucceeded => Reply::new(235, st(2, 7, 0), "Authentication succeeded"),
            AuthFailed => Reply::new(
                535,
                st(5, 7, 8),
                "Authentication credentials invalid: the user name and password were rejected; check both",
            ),
            AuthzidRefused => Reply::new(
                535,
                st(5, 7, 8),
                "Authentication failed: acting as another identity is not allowed; leave the PLAIN authorization identity empty",
            ),
            AuthCancelled => Reply::new(501, st(5, 0, 0), "Authentication cancelled"),
            AuthMalformed { detail } => Reply::new(
                501,
                st(5, 5, 2),
                format!("Cannot decode the AUTH response: {detail}; authentication cancelled"),
            ),
            AuthLineTooLong { limit } => Reply::new(
                500,
                st(5, 5, 6),
                format!(
                    "Authentication exchange line is too long (more than {limit} octets); authentication cancelled"
                ),
            ),
            AuthMechanismUnknown { name } => Reply::new(
                504,
                st(5, 5, 4),
                format!("Unrecognized authentication mechanism {name:?}; this server offers PLAIN and LOGIN"),
            ),
            AuthNeedsTls => Reply::new(
                538,
                st(5, 7, 11),
                "Encryption required for authentication: send STARTTLS first, then AUTH",
            ),
            AuthNotAvailable => Reply::new(
                502,
                st(5, 5, 1),
                "AUTH is not offered on this port; submit mail on the submission port (587 or 465)",
            ),
            AlreadyAuthenticated => Reply::new(
                503,
                st(5, 5, 1),
                "Bad sequence of commands: already authenticated; AUTH is allowed once per session",
            ),
            AuthInTransaction => Reply::new(
                503,
                st(5, 5, 1),
                "Bad sequence of commands: AUTH is not allowed inside a mail transaction; send RSET first",
            ),
            AuthRequired { tls: true } => Reply::new(
                530,
                st(5, 7, 0),
                "Authentication required: this is a submission port; send AUTH with your user name and password first",
            ),
            AuthRequired { tls: false } => Reply::new(
                530,
                st(5, 7, 0),
                "Authentication required: this is a submission port; send STARTTLS, then AUTH with your user name and password",
            ),
            AuthTemporaryFailure { detail } => Reply::new(
                454,
                st(4, 7, 0),
                format!("Temporary authentication failure ({detail}); try again later"),
            ),
        }
    }

    /// The cause for a command the parser refused.
    pub fn from_command_error(e: &CommandError) -> Cause {
        match e {
            CommandError::Empty => Cause::SyntaxError { detail: "empty command line".into() },
            CommandError::NotUtf8 => {
                Cause::SyntaxError { detail: "the command line is not ASCII or UTF-8".into() }
            }
            CommandError::Unknown(verb) => Cause::UnknownCommand { verb: verb.clone() },
            CommandError::Syntax(detail) => Cause::ParamSyntax { detail: detail.clone() },
            CommandError::Param(ParamError::Syntax(detail)) => Cause::ParamSyntax { detail: detail.clone() },
            CommandError::Param(ParamError::Unsupported(param)) => {
                Cause::ParamUnsupported { param: param.clone() }
            }
            CommandError::Path { error: AddressError::Utf8NotAllowed, .. } => Cause::Utf8NotAllowed,
            CommandError::Path { role: PathRole::Sender, error } => {
                Cause::BadSender { detail: error.to_string() }
            }
            CommandError::Path { role: PathRole::Recipient, error } => {
                Cause::BadRecipient { detail: error.to_string() }
            }
        }
    }

    /// True when the server closes the connection after sending this reply.
    pub fn closes(&self) -> bool {
        matches!(
            self,
            Cause::Closing { .. }
                | Cause::BareLineEnding
                | Cause::TooManyBadCommands { .. }
                | Cause::TooManyCommands { .. }
                | Cause::TooMuchPipelinedInput { .. }
                | Cause::Timeout
                | Cause::ShuttingDown
                | Cause::TooManySessions { .. }
        )
    }
}

/// The one-line refusal for a suppressed recipient: when, why, and how to lift it. The
/// detail is made printable ASCII and shortened, and the removal hint loses the address when
/// a very long address would push the line past 512 octets (RFC 5321 §4.5.3.1.5).
fn suppressed(address: &str, since: &str, by: &SuppressedBy, detail: &str) -> Reply {
    let status = match by {
        SuppressedBy::Bounce { status: Some(s) }
            if s.class == 5 && (s.subject == 1 || (s.subject, s.detail) == (2, 1)) =>
        {
            *s
        }
        _ => EnhancedStatus::new(5, 7, 1),
    };
    let event = match by {
        SuppressedBy::Bounce { .. } => "it bounced",
        SuppressedBy::Complaint => "the recipient complained",
        SuppressedBy::Operator => "it was added by hand",
    };
    let head = format!("<{address}> is on this server's suppression list: {event} on {since} (");
    let mut tail = format!("); remove it with `homing suppress remove {address}` if the address works again");
    if head.len() + tail.len() > MAX_REPLY_TEXT {
        tail = "); remove it with `homing suppress remove` if the address works again".to_string();
    }
    let room = MAX_REPLY_TEXT.saturating_sub(head.len() + tail.len());
    let mut detail: String =
        detail.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if detail.len() > room {
        detail.truncate(room.saturating_sub(3));
        if room >= 3 {
            detail.push_str("...");
        }
    }
    Reply::new(550, Some(status), format!("{head}{detail}{tail}"))
}

#[cfg(test)]
#[path = "cause_tests.rs"]
mod tests;
