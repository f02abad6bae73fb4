//! Just enough of RFC 5322 and MIME (RFC 2045, 2046, 2047) to read bounce messages the way
//! real servers write them: lenient about everything, bounded in depth and size, never
//! panicking on garbage.

use std::borrow::Cow;

use crate::dsn::wire;

/// Deepest MIME nesting followed; deeper parts are treated as opaque text.
const MAX_DEPTH: usize = 12;
/// Most parts collected from one message; the rest are ignored.
const MAX_PARTS: usize = 256;

/// One header field, unfolded (RFC 5322 §2.2.3), name as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// A parsed header section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Field>);

impl Headers {
    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value.as_str())
    }

    /// `name`'s value with RFC 2047 encoded words decoded.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(decode_words)
    }
}

/// Splits a message (or a MIME part) into its header section and body. The header section
/// ends at the first empty line; a message without one is all header (or, when its first
/// line is not a header, all body).
pub fn split(raw: &[u8]) -> (Headers, &[u8]) {
    let mut pos = 0;
    let mut end = raw.len();
    let mut body = raw.len();
    while pos < raw.len() {
        let nl = memchr(b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i);
        let line = trim_cr(&raw[pos..nl]);
        if line.is_empty() {
            end = pos;
            body = (nl + 1).min(raw.len());
            break;
        }
        pos = nl + 1;
    }
    let head = &raw[..end.min(raw.len())];
    let headers = parse_headers(head);
    if headers.0.is_empty() && !head.is_empty() && !looks_like_field(first_line(head)) {
        return (Headers::default(), raw);
    }
    (headers, &raw[body.min(raw.len())..])
}

fn first_line(b: &[u8]) -> &[u8] {
    trim_cr(&b[..memchr(b'\n', b).unwrap_or(b.len())])
}

fn looks_like_field(line: &[u8]) -> bool {
    match memchr(b':', line) {
        Some(i) if i > 0 => line[..i].iter().all(|&c| c.is_ascii_graphic() && c != b':'),
        _ => false,
    }
}

fn trim_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn memchr(c: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == c)
}

/// Parses header lines, unfolding continuations. Lines that are neither fields nor
/// continuations (mbox `From ` lines, junk) are skipped.
pub fn parse_headers(head: &[u8]) -> Headers {
    let mut fields: Vec<Field> = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = trim_cr(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut() {
                last.value.push(' ');
                last.value.push_str(latin1_or_utf8(line).trim());
            }
            continue;
        }
        if !looks_like_field(line) {
            continue;
        }
        let colon = memchr(b':', line).unwrap_or(0);
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
        let value = latin1_or_utf8(&line[colon + 1..]).trim().to_string();
        fields.push(Field { name, value });
    }
    Headers(fields)
}

/// Bytes as text: UTF-8 when valid, else Latin-1 (every byte maps to a character).
pub fn latin1_or_utf8(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(b.iter().map(|&c| c as char).collect()),
    }
}

/// A `Content-Type` (RFC 2045 §5.1): lowercase `type/subtype` and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    pub fn parse(value: Option<&str>) -> ContentType {
        let Some(value) = value else {
            return ContentType { mime: "text/plain".into(), params: Vec::new() };
        };
        let mut parts = split_params(value).into_iter();
        let first = parts.next().unwrap_or_default();
        // A missing `;` before the parameters ("text/plain charset=…") still names the type.
        let mime = first.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let mime = if mime.contains('/') { mime } else { "text/plain".into() };
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                let v = v.trim();
                let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                Some((k.trim().to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        ContentType { mime, params }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                if let Some(s) = out.last_mut() {
                    s.push(c)
                }
            }
            ';' if !quoted => out.push(String::new()),
            _ => {
                if let Some(s) = out.last_mut() {
                    s.push(c)
                }
            }
        }
    }
    out
}

/// A leaf of the MIME tree, decoded to text.
#[derive(Debug, Clone)]
pub struct Part {
    pub content_type: ContentType,
    pub headers: Headers,
    /// The body after transfer decoding and charset conversion.
    pub text: String,
    /// Whether the part sits inside an attached original message (`message/rfc822` or
    /// `text/rfc822-headers`): a copy of the bounced mail, not the notification.
    pub in_original: bool,
}

/// Flattens a message into its leaf parts, depth first. `message/rfc822` parts are
/// descended into (their parts marked `in_original`), so nested bounces can be read.
pub fn leaves(raw: &[u8]) -> (Headers, Vec<Part>) {
    let (headers, body) = split(raw);
    let mut out = Vec::new();
    walk(&headers, body, false, 0, &mut out);
    (headers, out)
}

fn walk(headers: &Headers, body: &[u8], in_original: bool, depth: usize, out: &mut Vec<Part>) {
    if out.len() >= MAX_PARTS {
        return;
    }
    let ct = ContentType::parse(headers.get("content-type"));
    if depth < MAX_DEPTH
        && ct.is_multipart()
        && let Some(boundary) = ct.param("boundary").filter(|b| !b.is_empty())
    {
        let parts = split_multipart(body, boundary.as_bytes());
        if !parts.is_empty() {
            for p in parts {
                let (h, b) = split_part(p);
                walk(&h, b, in_original, depth + 1, out);
            }
            return;
        }
    }
    let report_part = matches!(
        ct.mime.as_str(),
        "message/rfc822"
            | "text/rfc822-headers"
            | "message/delivery-status"
            | "message/global-delivery-status"
    );
    if in_original && !report_part {
        // Parts of an attached original are never read (see above): skip decoding them.
        out.push(Part { content_type: ct, headers: Headers::default(), text: String::new(), in_original });
        return;
    }
    let decoded = transfer_decode(headers.get("content-transfer-encoding"), body);
    if depth < MAX_DEPTH && (ct.mime == "message/rfc822" || ct.mime == "message/global") {
        let (h, b) = split(&decoded);
        out.push(Part {
            content_type: ContentType { mime: "text/rfc822-headers".into(), params: Vec::new() },
            headers: Headers::default(),
            text: header_text(&decoded),
            in_original: true,
        });
        // The attached original's body says nothing about the failure; only a report
        // attached inside it (a bounce of a bounce) is worth reading, and not decoding
        // the rest keeps large attachments cheap.
        if !in_original && ContentType::parse(h.get("content-type")).mime.starts_with("multipart/report") {
            walk(&h, b, true, depth + 1, out);
        }
        return;
    }
    // A multipart whose boundary never appears (truncated or hand-made reports) is read as
    // plain text rather than dropped.
    let ct =
        if ct.is_multipart() { ContentType { mime: "text/plain".into(), params: ct.params } } else { ct };
    let in_original = in_original || ct.mime == "text/rfc822-headers";
    let text = to_text(&decoded, ct.param("charset"));
    out.push(Part { content_type: ct, headers: headers.clone(), text, in_original });
}

/// The header section of a message as text (used for attached originals).
fn header_text(raw: &[u8]) -> String {
    let end = wire::find(raw, b"\n\n").or_else(|| wire::find(raw, b"\r\n\r\n")).unwrap_or(raw.len());
    latin1_or_utf8(&raw[..end]).into_owned()
}

/// A MIME part: headers then body. Parts that start with an empty line have no headers.
fn split_part(p: &[u8]) -> (Headers, &[u8]) {
    let first = first_line(p);
    if first.is_empty() {
        let skip = memchr(b'\n', p).map_or(p.len(), |i| i + 1);
        return (Headers::default(), &p[skip..]);
    }
    split(p)
}

/// The body parts between `--boundary` delimiter lines (RFC 2046 §5.1.1). Tolerates a
/// missing close delimiter and trailing whitespace after delimiters.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let mut starts: Vec<(usize, usize, bool)> = Vec::new(); // (line start, body start, is_close)
    let mut pos = 0;
    while pos < body.len() {
        let nl = memchr(b'\n', &body[pos..]).map_or(body.len(), |i| pos + i);
        let line = trim_cr(&body[pos..nl]);
        if line.starts_with(&delim) {
            let rest = &line[delim.len()..];
            let close = rest.starts_with(b"--");
            let rest_ok = rest.iter().all(|c| c.is_ascii_whitespace()) || close;
            if rest_ok {
                starts.push((pos, (nl + 1).min(body.len()), close));
                if close {
                    break;
                }
            }
        }
        pos = nl + 1;
    }
    let mut parts = Vec::new();
    for w in 0..starts.len() {
        let (_, begin, close) = starts[w];
        if close {
            break;
        }
        let end = starts.get(w + 1).map_or(body.len(), |s| s.0);
        let mut end = end.max(begin);
        // The CRLF before a delimiter belongs to the delimiter.
        if end > begin && body[end - 1] == b'\n' {
            end -= 1;
            if end > begin && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        parts.push(&body[begin..end]);
    }
    parts
}

/// Undoes `Content-Transfer-Encoding` (RFC 2045 §6): base64 and quoted-printable; other
/// encodings are identity.
pub fn transfer_decode<'a>(cte: Option<&str>, body: &'a [u8]) -> Cow<'a, [u8]> {
    match cte.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("base64") => Cow::Owned(base64(body)),
        Some("quoted-printable") => Cow::Owned(quoted_printable(body)),
        _ => Cow::Borrowed(body),
    }
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Lenient base64: skips characters outside the alphabet, stops at padding.
pub fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in data {
        if c == b'=' {
            break;
        }
        let Some(v) = b64_value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable (RFC 2045 §6.7), keeping malformed escapes as written.
pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        let rest = &data[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let (Some(h), Some(l)) =
            (rest.first().and_then(|&c| hex(c)), rest.get(1).and_then(|&c| hex(c)))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Bytes in `charset` as text. Latin-1 family byte for byte, ISO-2022-JP with its
/// double-byte runs dropped (bounce texts that matter are ASCII); anything else (UTF-8,
/// ASCII, unknown charsets) as UTF-8 with invalid bytes replaced.
pub fn to_text(bytes: &[u8], charset: Option<&str>) -> String {
    let cs = charset.unwrap_or("").trim().to_ascii_lowercase();
    match cs.as_str() {
        "iso-2022-jp" | "iso-2022-jp-2" => strip_iso2022(bytes),
        "iso-8859-1" | "latin1" | "windows-1252" | "cp1252" | "iso-8859-15" => {
            bytes.iter().map(|&c| c as char).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// ISO-2022-JP (RFC 1468) with the JIS X 0208 runs removed: `ESC $ B` … `ESC ( B`.
fn strip_iso2022(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut double = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b && i + 2 < bytes.len() {
            double = bytes[i + 1] == b'$';
            i += 3;
            if double {
                out.push(' ');
            }
            continue;
        }
        if !double || bytes[i] == b'\n' {
            out.push(bytes[i] as char);
        }
        i += 1;
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`) in a header value; anything
/// malformed stays as written. Whitespace between adjacent encoded words is dropped.
pub fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut last_was_word = false;
    // No encoded word can start after the last `?=`; stopping there keeps this linear.
    let last_close = value.rfind("?=").unwrap_or(0);
    while let Some(start) = rest.find("=?") {
        if value.len() - rest.len() + start >= last_close {
            break;
        }
        let (before, tail) = rest.split_at(start);
        let Some((decoded, used)) = encoded_word(tail) else {
            out.push_str(before);
            out.push_str("=?");
            rest = &tail[2..];
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&decoded);
        rest = &tail[used..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `s`: the text and how many bytes it used.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (enc, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let payload = &rest[..end];
    if charset.contains(char::is_whitespace) || payload.contains(' ') {
        return None;
    }
    let bytes = match enc.to_ascii_lowercase().as_str() {
        "b" => base64(payload.as_bytes()),
        "q" => quoted_printable(payload.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let used = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
    let charset = charset.split('*').next().unwrap_or(charset);
    Some((to_text(&bytes, Some(charset)), used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_body_splits() {
        let (h, body) = split(b"Subject: a\r\n b\r\nX-Y: z\r\n\r\nbody\r\n");
        assert_eq!(h.get("subject"), Some("a b"));
        assert_eq!(h.get("x-y"), Some("z"));
        assert_eq!(body, b"body\r\n");
    }

    #[test]
    fn text_without_headers_is_all_body() {
        let (h, body) = split(b"Hello there\nsecond line\n");
        assert!(h.0.is_empty());
        assert_eq!(body, b"Hello there\nsecond line\n");
    }

    #[test]
    fn multipart_is_flattened_and_originals_marked() {
        let msg = b"Content-Type: multipart/report; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n\r\nhuman text\r\n--XX\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\noriginal\r\n--XX--\r\n";
        let (_, parts) = leaves(msg);
        assert_eq!(parts[0].text, "human text");
        assert_eq!(parts[1].content_type.mime, "message/delivery-status");
        assert_eq!(parts[1].text, "Status: 5.1.1");
        // The attached original: its header section only; its body is not read.
        assert_eq!(parts.len(), 3);
        assert!(parts[2].in_original);
        assert_eq!(parts[2].content_type.mime, "text/rfc822-headers");
        assert_eq!(parts[2].text.trim(), "Subject: hi");
    }

    #[test]
    fn a_bounce_attached_to_a_bounce_is_read() {
        let inner = "Content-Type: multipart/report; boundary=\"YY\"\r\n\r\n--YY\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.2.2\r\n--YY--\r\n";
        let msg = format!(
            "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\n\r\nsee attached\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n{inner}--XX--\r\n"
        );
        let (_, parts) = leaves(msg.as_bytes());
        assert!(parts.iter().any(|p| p.in_original && p.text.contains("5.2.2")));
    }

    #[test]
    fn encodings_decode() {
        assert_eq!(base64(b"aGVs\r\nbG8="), b"hello");
        assert_eq!(quoted_printable(b"a=3Db=\r\nc"), b"a=bc");
        assert_eq!(decode_words("=?utf-8?B?w6k=?= =?utf-8?Q?t=C3=A9?= x"), "été x");
        assert_eq!(decode_words("=?broken"), "=?broken");
        assert_eq!(strip_iso2022(b"abc\x1b$B$3$s\x1b(Bdef"), "abc def");
    }

    #[test]
    fn garbage_never_panics() {
        for input in
            [&b""[..], b"\xff\xfe\x00", b"Content-Type: multipart/mixed; boundary=\r\n\r\n--", b"=?a?b?"]
        {
            let _ = leaves(input);
            let _ = decode_words(&String::from_utf8_lossy(input));
        }
    }
}
