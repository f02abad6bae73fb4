//! Generators of MIME-shaped messages for the bounce reader's property tests: trees of
//! multiparts and attached messages with random boundaries, report fields, bounce prose,
//! SES JSON, base64 and quoted-printable bodies, odd charsets and huge header lines, then
//! damaged on the way (line ends changed, truncated, bytes overwritten).

use std::fmt;

use proptest::prelude::*;

/// A rendered message; `Debug` shows it as text so a failing case reads like mail.
#[derive(Clone)]
pub struct Message(pub Vec<u8>);

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Any message: a tree a few levels deep, or a chain nested deeper than the reader follows.
pub fn message() -> impl Strategy<Value = Message> {
    (prop_oneof![4 => entity(), 1 => deep()], top_headers(), transport()).prop_map(|(e, headers, t)| {
        let mut raw = Vec::new();
        render(&e, &headers, &mut raw);
        Message(deliver(raw, &t))
    })
}

/// A MIME entity to render (RFC 2045/2046), or a deliberately broken one.
#[derive(Debug, Clone)]
enum Entity {
    Leaf(Leaf),
    Multipart {
        subtype: String,
        boundary: String,
        quoted: bool,
        preamble: String,
        parts: Vec<Entity>,
        closed: bool,
    },
    /// `message/rfc822`: an attached original (or a nested bounce).
    Message(Box<Entity>),
}

#[derive(Debug, Clone)]
struct Leaf {
    mime: String,
    charset: Option<String>,
    /// `Content-Transfer-Encoding` as labelled, and whether the body is encoded to match.
    cte: Option<String>,
    encoded: bool,
    body: Vec<u8>,
}

/// Addresses as reports write them, and strings that only resemble one.
pub fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.+_-]{1,10}@[a-z0-9-]{1,10}\\.(example|test|co\\.jp)",
        1 => "<[a-z]{1,6}@[a-z]{1,6}\\.example>",
        1 => "[a-zA-Z0-9 ;<>@.\"]{0,24}",
        1 => "rfc822; ?[a-z]{0,6}(@[a-z.]{0,8})?",
        1 => ".{0,20}",
    ]
}

fn status() -> impl Strategy<Value = String> {
    prop_oneof!["[245]\\.[0-9]{1,4}\\.[0-9]{1,4}", "[0-9.]{0,9}", ".{0,8}"]
}

fn reply_line() -> impl Strategy<Value = String> {
    (
        "[2-6][0-9]{2}[ -]?",
        status(),
        prop::sample::select(vec![
            "User unknown",
            "Mailbox full",
            "mailbox unavailable",
            "Message rejected as spam",
            "blocked using zen.spamhaus.org",
            "DMARC policy",
            "Connection timed out",
            "will be retried for 2 more day(s)",
            "message expired",
            "",
        ]),
        ".{0,40}",
    )
        .prop_map(|(code, status, words, tail)| format!("{code}{status} {words} {tail}"))
}

/// RFC 3464 / RFC 5965 shaped field groups, with values good and bad.
fn report_fields() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "Reporting-MTA",
        "Final-Recipient",
        "Original-Recipient",
        "X-Actual-Recipient",
        "Action",
        "Status",
        "Remote-MTA",
        "Diagnostic-Code",
        "Feedback-Type",
        "Original-Rcpt-To",
        "Removal-Recipient",
        "Arrival-Date",
    ]);
    let value = prop_oneof![
        address().prop_map(|a| format!("rfc822; {a}")),
        prop::sample::select(vec!["failed", "delayed", "delivered", "relayed", "abuse", "FAILED"])
            .prop_map(String::from),
        status(),
        reply_line().prop_map(|r| format!("smtp; {r}")),
        "dns; [a-z.]{0,20}",
        ".{0,60}",
    ];
    prop::collection::vec((name, value, prop::sample::select(vec!["\n", "\n\n", "\n ", "\r\n"])), 0..24)
        .prop_map(|fields| fields.into_iter().map(|(n, v, end)| format!("{n}: {v}{end}")).collect())
}

/// Bounce prose: addresses opening lines, replies, transcripts, copies of the original.
fn prose() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        address().prop_map(|a| format!("<{a}>:")),
        address().prop_map(|a| format!("  {a}")),
        address().prop_map(|a| format!("RCPT To:<{a}>")),
        reply_line(),
        reply_line().prop_map(|r| format!("<<< {r}")),
        prop::sample::select(vec![">>> DATA", ">>> RCPT To:<x@y.example>", ">>> MAIL From:<>"])
            .prop_map(String::from),
        prop::sample::select(vec![
            "--- Below this line is a copy of the message.",
            "This is a permanent error; I've given up.",
            "Technical details of temporary failure:",
            "(in reply to end of DATA command)",
            "Received: from x by y",
            "Sorry, no mailbox here by that name. (#5.1.1)",
            "",
        ])
        .prop_map(String::from),
        ".{0,80}",
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

/// Amazon SES notifications; every address has an `@` (see `ses_recipients_are_addresses`).
fn ses() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["Bounce", "Complaint", "Delivery", ""]),
        prop::sample::select(vec!["Permanent", "Transient", "Undetermined"]),
        prop::collection::vec(("[a-z]{1,6}@[a-z]{1,6}\\.example", status(), ".{0,30}"), 0..4),
        any::<bool>(),
    )
        .prop_map(|(kind, bounce_type, rcpts, wrapped)| {
            let list: Vec<String> = rcpts
                .iter()
                .map(|(a, s, d)| {
                    serde_json::json!({"emailAddress": a, "status": s, "diagnosticCode": d}).to_string()
                })
                .collect();
            let event = format!(
                r#"{{"notificationType":"{kind}","bounce":{{"bounceType":"{bounce_type}","bouncedRecipients":[{0}]}},"complaint":{{"complainedRecipients":[{0}]}}}}"#,
                list.join(",")
            );
            if wrapped { serde_json::json!({"Type": "Notification", "Message": event}).to_string() } else { event }
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        report_fields().prop_map(String::into_bytes),
        prose().prop_map(String::into_bytes),
        ses().prop_map(String::into_bytes),
        "(<[a-z/ =\"]{0,12}>|&nbsp;|&lt;|[a-z@. ]{0,20}){0,30}".prop_map(String::into_bytes),
        // ISO-2022-JP escapes, cut or not.
        "(\\x1b\\$B[!-~]{0,6}|\\x1b\\(B|[a-z ]{0,10}|\\x1b){0,12}".prop_map(String::into_bytes),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (
        prop::sample::select(vec![
            "text/plain",
            "text/html",
            "text/enriched",
            "message/delivery-status",
            "message/global-delivery-status",
            "text/delivery-status",
            "message/feedback-report",
            "text/rfc822-headers",
            "application/octet-stream",
            "TEXT/PLAIN",
            "",
            "nonsense",
        ]),
        proptest::option::of(prop_oneof![
            prop::sample::select(vec![
                "utf-8",
                "us-ascii",
                "iso-8859-1",
                "windows-1252",
                "iso-2022-jp",
                "koi8-r",
                "\"UTF-8\"",
                ""
            ])
            .prop_map(String::from),
            "[^\r\n;]{0,12}",
        ]),
        proptest::option::of(
            prop::sample::select(vec!["7bit", "8bit", "base64", "BASE64 ", "quoted-printable", "x-uuencode"])
                .prop_map(String::from),
        ),
        any::<bool>(),
        body(),
    )
        .prop_map(|(mime, charset, cte, encoded, body)| Leaf {
            mime: mime.into(),
            charset,
            cte,
            encoded,
            body,
        })
}

fn boundary() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9A-Za-z'()+_,./:=?-]{1,70}",
        Just("b".to_string()),
        Just(String::new()),
        "[^\"\r\n]{0,20}",
    ]
}

fn entity() -> impl Strategy<Value = Entity> {
    leaf().prop_map(Entity::Leaf).prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            3 => (
                prop::sample::select(vec!["report", "mixed", "alternative", "related", "digest"]),
                boundary(),
                any::<bool>(),
                prop_oneof![Just(String::new()), ".{0,40}"],
                prop::collection::vec(inner.clone(), 0..5),
                prop::bool::weighted(0.8),
            )
                .prop_map(|(subtype, boundary, quoted, preamble, parts, closed)| Entity::Multipart {
                    subtype: subtype.into(),
                    boundary,
                    quoted,
                    preamble,
                    parts,
                    closed,
                }),
            1 => inner.prop_map(|e| Entity::Message(Box::new(e))),
        ]
    })
}

/// Nesting deeper than the reader follows (`mime::MAX_DEPTH`).
fn deep() -> impl Strategy<Value = Entity> {
    (1usize..40, leaf(), any::<bool>()).prop_map(|(depth, leaf, same_boundary)| {
        (0..depth).fold(Entity::Leaf(leaf), |inner, level| {
            if level % 3 == 2 {
                Entity::Message(Box::new(inner))
            } else {
                Entity::Multipart {
                    subtype: "mixed".into(),
                    boundary: if same_boundary { "b".into() } else { format!("b{level}") },
                    quoted: level % 2 == 0,
                    preamble: String::new(),
                    parts: vec![inner],
                    closed: true,
                }
            }
        })
    })
}

/// Top-level header fields: bounce-looking senders and subjects, encoded words, folded and
/// very long lines.
fn top_headers() -> impl Strategy<Value = Vec<String>> {
    let field = prop_oneof![
        address().prop_map(|a| format!("From: {a}")),
        Just("From: Mail Delivery System <MAILER-DAEMON@mx.sender.example>".to_string()),
        prop::sample::select(vec![
            "Subject: Undelivered Mail Returned to Sender",
            "Subject: Out of office",
            "Subject: failure notice",
            "Auto-Submitted: auto-replied",
            "Precedence: auto_reply",
            "X-Autoreply: yes",
        ])
        .prop_map(String::from),
        address().prop_map(|a| format!("To: {a}")),
        prop::collection::vec(address(), 0..6).prop_map(|a| format!("X-Failed-Recipients: {}", a.join(", "))),
        ("[^?\r\n]{0,10}", "[bBqQx]", "[^\r\n]{0,40}")
            .prop_map(|(cs, e, p)| format!("Subject: =?{cs}?{e}?{p}?=")),
        (1usize..100_000, "[a-z@=? ]").prop_map(|(n, c)| format!("X-Long: {}", c.repeat(n))),
        (1usize..3_000).prop_map(|n| format!("Subject: {}", "=?a?q?".repeat(n))),
        "[A-Za-z-]{1,20}: [^\r\n]{0,60}(\n[ \t][^\r\n]{0,30}){0,3}",
        "[^\r\n]{0,40}",
    ];
    prop::collection::vec(field, 0..8)
}

fn render(e: &Entity, headers: &[String], out: &mut Vec<u8>) {
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.push(b'\n');
    }
    match e {
        Entity::Leaf(l) => {
            out.extend_from_slice(format!("Content-Type: {}", l.mime).as_bytes());
            if let Some(cs) = &l.charset {
                out.extend_from_slice(format!("; charset={cs}").as_bytes());
            }
            out.push(b'\n');
            if let Some(cte) = &l.cte {
                out.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\n").as_bytes());
            }
            out.push(b'\n');
            match l.cte.as_deref().map(str::trim).map(str::to_ascii_lowercase).as_deref() {
                Some("base64") if l.encoded => out.extend(encode_base64(&l.body)),
                Some("quoted-printable") if l.encoded => out.extend(encode_qp(&l.body)),
                _ => out.extend_from_slice(&l.body),
            }
        }
        Entity::Multipart { subtype, boundary, quoted, preamble, parts, closed } => {
            let param = if *quoted { format!("\"{boundary}\"") } else { boundary.clone() };
            out.extend_from_slice(
                format!("Content-Type: multipart/{subtype}; boundary={param}\n\n").as_bytes(),
            );
            out.extend_from_slice(format!("{preamble}\n").as_bytes());
            for p in parts {
                out.extend_from_slice(format!("--{boundary}\n").as_bytes());
                render(p, &[], out);
                out.push(b'\n');
            }
            if *closed {
                out.extend_from_slice(format!("--{boundary}--\n").as_bytes());
            }
        }
        Entity::Message(inner) => {
            out.extend_from_slice(b"Content-Type: message/rfc822\n\n");
            render(inner, &["Subject: the original".to_string()], out);
        }
    }
}

fn encode_base64(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + 4);
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push(b'\n');
        }
        let n = chunk.iter().enumerate().fold(0u32, |n, (k, &b)| n | (b as u32) << (16 - 8 * k));
        for k in 0..4 {
            out.push(if k <= chunk.len() { ALPHABET[(n >> (18 - 6 * k) & 63) as usize] } else { b'=' });
        }
    }
    out
}

fn encode_qp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3);
    let mut col = 0;
    for &b in data {
        if col >= 72 {
            out.extend_from_slice(b"=\n");
            col = 0;
        }
        if b == b'\n' {
            out.push(b);
            col = 0;
        } else if (b' '..=b'~').contains(&b) && b != b'=' {
            out.push(b);
            col += 1;
        } else {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
            col += 3;
        }
    }
    out
}

/// What happens to a rendered message on its way: line ends, truncation, damage.
#[derive(Debug, Clone)]
struct Transport {
    crlf: bool,
    /// Keep only this fraction of the bytes (per mille).
    cut: Option<u16>,
    /// (position per mille, byte) pairs written over the message.
    flips: Vec<(u16, u8)>,
}

fn transport() -> impl Strategy<Value = Transport> {
    (any::<bool>(), proptest::option::of(0u16..1000), prop::collection::vec((0u16..1000, any::<u8>()), 0..3))
        .prop_map(|(crlf, cut, flips)| Transport { crlf, cut, flips })
}

fn deliver(mut raw: Vec<u8>, t: &Transport) -> Vec<u8> {
    if t.crlf {
        raw = String::from_utf8_lossy(&raw).replace('\n', "\r\n").into_bytes();
    }
    let at = |per_mille: u16, len: usize| len * per_mille as usize / 1000;
    if let Some(c) = t.cut {
        raw.truncate(at(c, raw.len()));
    }
    for &(pos, b) in &t.flips {
        let i = at(pos, raw.len());
        if let Some(slot) = raw.get_mut(i) {
            *slot = b;
        }
    }
    raw
}
