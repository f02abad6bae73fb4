//! The failure vocabulary: why (reason), how far it reaches (scope), who must act (actor),
//! and where on the mail's path it happened (stage).
//!
//! Reason names are Sisimai's, so homing's results compare with the de facto bounce
//! classifier (see docs/FAILURES.md).

use std::fmt;
use std::str::FromStr;

/// A name that is not in one of the vocabularies below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownName {
    /// Which vocabulary: "reason", "scope", "actor" or "stage".
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

/// Declares a fieldless enum with a lowercase name per variant, `as_str`, `ALL`,
/// `Display` and a case-insensitive `FromStr`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The lowercase name used in rules files, logs and reports.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Serialized as its lowercase name, like everywhere else.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| UnknownName {
                        kind: $kind,
                        value: s.to_string(),
                        expected: $name::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}

vocabulary! {
    /// Why a delivery failed, in Sisimai's vocabulary (docs/FAILURES.md).
    Reason, "reason" {
        AuthFailure = "authfailure",
        BadReputation = "badreputation",
        Blocked = "blocked",
        ContentError = "contenterror",
        Delivered = "delivered",
        ExceedLimit = "exceedlimit",
        Expired = "expired",
        FailedStartTls = "failedstarttls",
        Feedback = "feedback",
        Filtered = "filtered",
        HasMoved = "hasmoved",
        HostUnknown = "hostunknown",
        MailboxFull = "mailboxfull",
        MailerError = "mailererror",
        MesgTooBig = "mesgtoobig",
        NetworkError = "networkerror",
        NoRelaying = "norelaying",
        NotAccept = "notaccept",
        NotCompliantRfc = "notcompliantrfc",
        OnHold = "onhold",
        PolicyViolation = "policyviolation",
        RateLimited = "ratelimited",
        Rejected = "rejected",
        RequirePtr = "requireptr",
        SecurityError = "securityerror",
        SpamDetected = "spamdetected",
        Speeding = "speeding",
        Suppressed = "suppressed",
        Suspend = "suspend",
        SyntaxError = "syntaxerror",
        SystemError = "systemerror",
        SystemFull = "systemfull",
        TooManyConn = "toomanyconn",
        Undefined = "undefined",
        UserUnknown = "userunknown",
        Vacation = "vacation",
        VirusDetected = "virusdetected",
    }
}

impl Reason {
    /// A short phrase for subjects and headings ("the mailbox is full").
    pub const fn phrase(self) -> &'static str {
        match self {
            Reason::AuthFailure => "sender authentication (SPF/DKIM/DMARC) failed",
            Reason::BadReputation => "the sender's reputation is too low",
            Reason::Blocked => "the sending server is blocked",
            Reason::ContentError => "the message content was refused",
            Reason::Delivered => "delivered",
            Reason::ExceedLimit => "the message exceeds the recipient's limit",
            Reason::Expired => "delivery time expired",
            Reason::FailedStartTls => "a secure (TLS) connection could not be made",
            Reason::Feedback => "the recipient complained",
            Reason::Filtered => "the recipient's filter refused the message",
            Reason::HasMoved => "the recipient has moved",
            Reason::HostUnknown => "the recipient's domain has no mail server",
            Reason::MailboxFull => "the recipient's mailbox is full",
            Reason::MailerError => "the mail program failed",
            Reason::MesgTooBig => "the message is too big",
            Reason::NetworkError => "the receiving server could not be reached",
            Reason::NoRelaying => "relaying was denied",
            Reason::NotAccept => "the recipient's domain accepts no mail",
            Reason::NotCompliantRfc => "the message breaks the mail standards",
            Reason::OnHold => "the recipient was refused without a clear reason",
            Reason::PolicyViolation => "the receiving domain's policy refused the message",
            Reason::RateLimited => "the receiving server is limiting the sending rate",
            Reason::Rejected => "the sender address was refused",
            Reason::RequirePtr => "the sending IP has no reverse DNS",
            Reason::SecurityError => "a security check failed",
            Reason::SpamDetected => "the message was judged to be spam",
            Reason::Speeding => "too much mail was sent too fast",
            Reason::Suppressed => "the address is on the suppression list",
            Reason::Suspend => "the recipient's account is disabled",
            Reason::SyntaxError => "the receiving server rejected a command",
            Reason::SystemError => "the receiving system failed",
            Reason::SystemFull => "the receiving system is out of space",
            Reason::TooManyConn => "too many connections to the receiving server",
            Reason::Undefined => "the failure could not be classified",
            Reason::UserUnknown => "the recipient address does not exist",
            Reason::Vacation => "an automatic reply, not a failure",
            Reason::VirusDetected => "a virus was found in the message",
        }
    }

    /// Whether a hard failure with this reason puts the recipient on the suppression list:
    /// the address itself is dead (no such user, no such domain, a domain that takes no
    /// mail, a disabled account) or its owner complained. Full mailboxes, provider blocks
    /// and throttles never do.
    pub const fn kills_address(self) -> bool {
        matches!(
            self,
            Reason::UserUnknown
                | Reason::HostUnknown
                | Reason::NotAccept
                | Reason::Suspend
                | Reason::Feedback
        )
    }
}

vocabulary! {
    /// How far a failure reaches: what else will fail for the same cause.
    Scope, "scope" {
        /// This one recipient address.
        Recipient = "recipient",
        /// The recipient's mailbox (exists, but cannot take mail now).
        Mailbox = "mailbox",
        /// Every recipient at the destination domain.
        Domain = "domain",
        /// Everything from this sender address or domain.
        Sender = "sender",
        /// Everything from the sending IP address.
        SendingIp = "sending_ip",
        /// This message only (its content or size).
        Message = "message",
        /// The connection or network path.
        Transport = "transport",
    }
}

vocabulary! {
    /// Who must act to fix the failure.
    Actor, "actor" {
        /// The person or program that sent the message.
        Sender = "sender",
        /// Whoever runs the sending mail server (homing's operator).
        SendingOperator = "sending_operator",
        /// The person the mail was for.
        Recipient = "recipient",
        /// The administrator of the recipient's domain or mail server.
        RecipientAdmin = "recipient_admin",
        /// Nobody: homing handles it by itself, or it is not a failure.
        Nobody = "nobody",
    }
}

vocabulary! {
    /// Where on the delivery path the evidence was gathered (RFC 5321 §3 transaction steps,
    /// plus the DNS lookup before and the local queue after).
    Stage, "stage" {
        /// MX / address lookup (RFC 5321 §5.1).
        Route = "route",
        /// TCP connect.
        Connect = "connect",
        /// The server's 220 greeting (RFC 5321 §3.1).
        Greeting = "greeting",
        /// EHLO / HELO (RFC 5321 §4.1.1.1).
        Ehlo = "ehlo",
        /// STARTTLS (RFC 3207).
        StartTls = "starttls",
        /// MAIL FROM (RFC 5321 §4.1.1.2).
        Mail = "mail",
        /// RCPT TO (RFC 5321 §4.1.1.3).
        Rcpt = "rcpt",
        /// DATA command (RFC 5321 §4.1.1.4).
        Data = "data",
        /// The reply after the final dot.
        Dot = "dot",
        /// Local queue decisions: expiry, suppression.
        Queue = "queue",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
            assert_eq!(r.as_str(), r.as_str().to_lowercase());
        }
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(*s));
        }
        for a in Actor::ALL {
            assert_eq!(a.as_str().parse::<Actor>(), Ok(*a));
        }
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(*s));
        }
    }

    #[test]
    fn vocabulary_covers_failures_md() {
        let listed = "authfailure, badreputation, blocked, contenterror, delivered, expired, \
            failedstarttls, feedback, filtered, hasmoved, hostunknown, mailboxfull, mailererror, \
            mesgtoobig, networkerror, norelaying, notaccept, notcompliantrfc, onhold, \
            policyviolation, ratelimited, rejected, requireptr, securityerror, spamdetected, \
            speeding, suppressed, suspend, syntaxerror, systemerror, systemfull, toomanyconn, \
            undefined, userunknown, vacation, virusdetected, exceedlimit";
        for name in listed.split(", ") {
            assert!(name.parse::<Reason>().is_ok(), "{name}");
        }
        assert_eq!(Reason::ALL.len(), listed.split(", ").count());
    }

    #[test]
    fn only_dead_addresses_and_complaints_suppress() {
        let suppressing: Vec<&str> =
            Reason::ALL.iter().filter(|r| r.kills_address()).map(|r| r.as_str()).collect();
        assert_eq!(suppressing, ["feedback", "hostunknown", "notaccept", "suspend", "userunknown"]);
    }

    #[test]
    fn unknown_names_say_what_is_expected() {
        let err = "nosuchreason".parse::<Reason>().unwrap_err();
        assert!(err.to_string().contains("userunknown"));
        assert!("UserUnknown".parse::<Reason>().is_ok());
    }
}
