//! Bounces written for people: the notification text most servers send instead of, or
//! beside, an RFC 3464 report (qmail, Exim, Sendmail, Exchange, Gmail, Yahoo, Domino …).
//!
//! There is no standard, but the shapes are few. The text is cut where the copy of the
//! original message starts; each failed address sits on a line of its own or opens one
//! (`<bob@example.com>:`, `  bob@example.com`, `RCPT To:<bob@example.com>`), and the
//! lines after it, up to the next address, say what went wrong.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

/// Most lines of diagnostic text kept after one mention of an address.
const BLOCK_LINES: usize = 14;
/// Longest line examined for addresses; longer lines are data, not prose.
const LINE_MAX: usize = 4096;

/// One failed address found in prose, with the text about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub recipient: String,
    pub text: String,
}

/// Lines that start a copy of the original message (or its headers), lowercased. The
/// notification is the text before the first of them.
const ORIGINAL_MARKERS: &[&str] = &[
    "this is a copy of the message",
    "this is a copy of your message",
    "below this line is a copy of the message",
    "original message follows",
    "original message headers",
    "----- original message -----",
    "-----original message-----",
    "------- returned message --------",
    "----- returned message",
    "--- the header of the original message",
    "header of the original message",
    "the original message was:",
    "original message header",
    "the text you sent follows",
    "your message reads",
    "returned message follows",
    "unsent message below",
    "message text follows",
    "the original message is attached",
    "here is a copy of the first part of the message",
    "copy of the original message below",
    "----- original message",
    "content-type: message/rfc822",
    "--- below this line is the original bounce",
    "here are the first",
    "=== original message",
    "message headers follow",
    "original message headers follow",
    "the headers of the original message",
];

/// Header fields whose appearance at the start of a line means the original message's
/// header section has begun.
const ORIGINAL_HEADERS: &[&str] =
    &["received: ", "return-path: ", "dkim-signature: ", "x-google-smtp-source:", "arc-seal:"];

/// The notification part of a prose bounce: everything before the copy of the original.
/// One case-insensitive pass finds the markers; a marker on the first line does not count.
pub fn notification(text: &str) -> &str {
    static MARKERS: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    let markers = MARKERS
        .get_or_init(|| AhoCorasick::builder().ascii_case_insensitive(true).build(ORIGINAL_MARKERS).ok());
    let first_line_end = text.find('\n').unwrap_or(text.len());
    let mut cut = text.len();
    if let Some(m) = markers.as_ref().and_then(|ac| ac.find_iter(text).find(|m| m.start() > first_line_end)) {
        cut = text[..m.start()].rfind('\n').map_or(0, |i| i + 1);
    }
    let mut offset = 0;
    for line in text[..cut].split_inclusive('\n') {
        // A forwarded bounce quotes the whole notice, original included ("> Received: …").
        let bare = line.trim_start_matches(['>', ' ']);
        let header = bare.len() > 12 && ORIGINAL_HEADERS.iter().any(|h| super::starts_with_ci(bare, h));
        if header && offset > 0 {
            return &text[..offset];
        }
        offset += line.len();
    }
    &text[..cut]
}

/// An address found in a line: byte range and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    start: usize,
    end: usize,
    address: String,
}

fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&c)
}

fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// Every plausible `local@domain` in `line` (RFC 5321 §4.1.2 dot-atom shapes; quoted local
/// parts and IP literals are rare in bounces and skipped).
fn addresses(line: &str) -> Vec<Found> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = b[i..].iter().position(|&c| c == b'@').map(|p| p + i) {
        let mut s = at;
        while s > 0 && local_char(b[s - 1]) {
            s -= 1;
        }
        let mut e = at + 1;
        while e < b.len() && domain_char(b[e]) {
            e += 1;
        }
        let mut local_start = s;
        while local_start < at && b[local_start] == b'.' {
            local_start += 1;
        }
        let mut domain_end = e;
        while domain_end > at + 1 && matches!(b[domain_end - 1], b'.' | b'-') {
            domain_end -= 1;
        }
        let domain = &line[at + 1..domain_end];
        if local_start < at && domain.contains('.') && !domain.starts_with('.') && domain.len() > 2 {
            out.push(Found {
                start: local_start,
                end: domain_end,
                address: line[local_start..domain_end].to_string(),
            });
        }
        i = e.max(at + 1);
    }
    out
}

/// Whether `line`, mentioning `f`, names the address as a failed recipient: the address
/// opens the line, or stands nearly alone on it, or follows a phrase that introduces one.
fn introduces(line: &str, f: &Found) -> bool {
    // Quoted text ("> > Message-Id: …" in a forwarded bounce) is read without its quoting.
    let before = line[..f.start]
        .trim_start_matches(['>', ' ', '\t'])
        .trim()
        .trim_end_matches(['<', '"', '\'', '(', '['])
        .trim();
    let after = line[f.end..].trim_start_matches(['>', '"', '\'', ')', ']']).trim();
    let lower_before = before.to_ascii_lowercase();
    if lower_before.starts_with("<<<")
        || lower_before.starts_with("from:")
        || lower_before.starts_with("message-id")
    {
        return false;
    }
    if before.is_empty() || before.chars().all(|c| "*-#>:.0123456789".contains(c) || c.is_whitespace()) {
        return true;
    }
    let rest: String = format!("{before} {after}").chars().filter(|c| !c.is_whitespace()).collect();
    if rest.len() <= 24 && !lower_before.contains("from") {
        return true;
    }
    const NOT_RECIPIENT: &[&str] =
        &["from", "sender", "reply-to", "return-path", "envelope-from", "mail from"];
    let last_words = lower_before.rsplit(['.', '!', '?']).next().unwrap_or("");
    if NOT_RECIPIENT.iter().any(|w| last_words.contains(w)) {
        return false;
    }
    if lower_before.ends_with(':') || lower_before.ends_with(" to") {
        return true;
    }
    const PHRASES: &[&str] = &[
        "rcpt to:",
        "recipient:",
        "recipients:",
        "recipient address:",
        "address:",
        "to:",
        "message to",
        "delivered to",
        "delivery to",
        "deliver to",
        "deliver your message to",
        "sent to",
        "addressed to",
        "for",
        "user",
        "mailbox",
        "account",
        "recipient",
        "original-recipient",
        "final-recipient",
        "x-failed-recipients:",
    ];
    PHRASES.iter().any(|p| lower_before.ends_with(p))
}

/// The failed addresses in `text` with what the text says about each, in order of first
/// mention. `ignore` lists addresses that are not recipients (the bounce's own sender and
/// addressee); `mailer-daemon@` and `postmaster@` addresses are never recipients.
pub fn mentions(text: &str, ignore: &[String]) -> Vec<Mention> {
    let lines: Vec<&str> = text.lines().collect();
    let skip = |a: &str| {
        let l = a.to_ascii_lowercase();
        l.starts_with("mailer-daemon@")
            || l.starts_with("postmaster@")
            || l.starts_with("no-reply@")
            || l.starts_with("noreply@")
            || ignore.iter().any(|i| i.eq_ignore_ascii_case(a))
    };
    // (line index, address, byte offset after the address) of each introducing mention.
    let mut marks: Vec<(usize, String, usize)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.len() > LINE_MAX {
            continue;
        }
        let found = addresses(line);
        if let Some(f) = found.iter().find(|f| !skip(&f.address) && introduces(line, f)) {
            let same_as_last = marks.last().is_some_and(|(_, a, _)| a.eq_ignore_ascii_case(&f.address));
            let continues = same_as_last && marks.last().is_some_and(|(li, _, _)| i - li <= 3);
            if !continues {
                marks.push((i, f.address.clone(), f.end));
            }
        }
    }
    let mut out: Vec<Mention> = Vec::new();
    // Per mention: whether some line other than a summary `To:` field names it.
    let mut named: Vec<bool> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, (i, addr, after)) in marks.iter().enumerate() {
        let summary = summary_field(lines[*i]) == Some("to:");
        let stop = marks.get(k + 1).map_or(lines.len(), |m| m.0).min(i + 1 + BLOCK_LINES);
        let mut block = String::new();
        let first = lines[*i].get(*after..).unwrap_or("");
        block.push_str(first.trim_start_matches(['>', ':', ' ', '"', '\'', ')', '.']).trim());
        let mut blank_run = 0;
        let mut j = i + 1;
        while j < stop {
            let l = lines[j].trim();
            if l.is_empty() {
                blank_run += 1;
                // Two blank lines, or one after some text, end the block; an address alone
                // on its line with its text a paragraph further (Gmail, Exchange) continues.
                if blank_run >= 2 || (!block.trim().is_empty() && !continues_after_blank(&lines, j)) {
                    break;
                }
            } else if summary_field(l).is_none() {
                blank_run = 0;
                block.push('\n');
                block.push_str(l);
            }
            j += 1;
        }
        match index.get(&addr.to_ascii_lowercase()).copied() {
            Some(m) => {
                named[m] |= !summary;
                if !block.trim().is_empty() {
                    out[m].text.push('\n');
                    out[m].text.push_str(block.trim());
                }
            }
            None => {
                index.insert(addr.to_ascii_lowercase(), out.len());
                named.push(!summary);
                out.push(Mention { recipient: addr.clone(), text: block.trim().to_string() });
            }
        }
    }
    // "Your message / To: … / Subject: … / did not reach the following recipient(s): …"
    // (Exchange, Domino): the summary's `To:` quotes the original's header, not a failure,
    // whenever the notice names its failed recipients elsewhere.
    if named.iter().any(|&n| n) {
        let mut keep = named.into_iter();
        out.retain(|_| keep.next().unwrap_or(true));
    }
    out
}

/// The header field name (lowercased, with its colon) when `line` is one of the fields with
/// which a notice summarises the original message ("To: …", "Subject: …", "Sent: …"):
/// a description of what was sent, never the reason it failed.
fn summary_field(line: &str) -> Option<&'static str> {
    const FIELDS: &[&str] = &["to:", "subject:", "sent:", "date:", "cc:"];
    let line = line.trim_start();
    FIELDS.iter().copied().find(|f| super::starts_with_ci(line, f))
}

/// Whether the text after the blank line at `j` still belongs to the block above: it is
/// indented (Exim, Postfix) or it is an SMTP reply or transcript line.
fn continues_after_blank(lines: &[&str], j: usize) -> bool {
    let Some(next) = lines[j + 1..].iter().find(|l| !l.trim().is_empty()) else { return false };
    let t = next.trim_start();
    next.starts_with([' ', '\t'])
        || t.starts_with("<<<")
        || t.starts_with(">>>")
        || t.starts_with('(')
        || t.as_bytes().first().is_some_and(|c| matches!(c, b'4' | b'5'))
            && t.as_bytes().get(1).is_some_and(u8::is_ascii_digit)
}

/// Every address in `text` (used for `X-Failed-Recipients` and `To` fields).
pub fn all_addresses(text: &str) -> Vec<String> {
    addresses(text).into_iter().map(|f| f.address).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmail_shape() {
        let text = "Hi. This is the qmail-send program at mx.example.jp.\n\
            I'm afraid I wasn't able to deliver your message to the following addresses.\n\n\
            <kijitora@example.net>:\n\
            Connected to 192.0.2.112 but my name was rejected.\n\
            Remote host said: 501 5.0.0 Invalid domain name\n\n\
            --- Below this line is a copy of the message.\n\nReturn-Path: <x@example.jp>\n";
        let note = notification(text);
        assert!(!note.contains("Return-Path"));
        let m = mentions(note, &[]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].recipient, "kijitora@example.net");
        assert!(m[0].text.contains("501 5.0.0 Invalid domain name"), "{:?}", m[0].text);
    }

    #[test]
    fn exim_shape_with_indented_continuation() {
        let text = "The following address(es) failed:\n\n  bob@example.org\n    SMTP error from remote mail server after RCPT TO:<bob@example.org>:\n    host mx.example.org [192.0.2.1]: 550 5.1.1 unknown user\n";
        let m = mentions(text, &[]);
        assert_eq!(m.len(), 1);
        assert!(m[0].text.contains("550 5.1.1 unknown user"), "{:?}", m[0].text);
    }

    #[test]
    fn sender_and_daemons_are_not_recipients() {
        let text =
            "Hello sender@example.jp,\nMAILER-DAEMON@example.org says:\n<bob@example.org>: mailbox full\n";
        let m = mentions(text, &["sender@example.jp".to_string()]);
        assert_eq!(m.iter().map(|m| m.recipient.as_str()).collect::<Vec<_>>(), ["bob@example.org"]);
    }

    #[test]
    fn address_edges() {
        assert_eq!(all_addresses("<a.b@c.example.>, x@y, .q@r.st"), ["a.b@c.example", "q@r.st"]);
        assert!(all_addresses("@@@ a@ @b.c").is_empty());
    }
}
