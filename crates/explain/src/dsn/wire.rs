//! Byte-level helpers for writing the report: header sanitising and folding (RFC 5322
//! §2.2.3, §2.1.1), quoted-printable (RFC 2045 §6.7), CRLF normalisation, boundaries
//! (RFC 2046 §5.1.1).

/// Longest line we aim for when folding (RFC 5322 §2.1.1 "SHOULD" 78).
const FOLD_AT: usize = 78;
/// Longest run without whitespace we keep on one line; RFC 5322 §2.1.1 "MUST" is 998.
const HARD_LIMIT: usize = 900;

/// One header value on one line: control characters (CR and LF above all) become spaces,
/// runs of whitespace become one space, ends are trimmed.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `one_line`, then every non-ASCII character as `\x{HEX}` (the escape of RFC 6533 §3), so
/// `message/delivery-status` stays 7-bit as RFC 3464 §2.1 expects.
pub fn ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    out
}

/// An address field value (RFC 3464 §2.3.1, §2.3.2): `rfc822; addr`, or
/// `utf-8; escaped` for an internationalised address (RFC 6533 §3).
pub fn address(addr: &str) -> String {
    let a = one_line(addr);
    let a = a.trim_start_matches('<').trim_end_matches('>');
    if a.is_ascii() { format!("rfc822; {a}") } else { format!("utf-8; {}", ascii(a)) }
}

/// `Name: value` folded at spaces to about 78 columns, CRLF-terminated. A run of more than
/// 900 characters without a space is split with a fold.
// DEVIATION: RFC 5322 §2.2.3 folds only at existing whitespace; for a run longer than 998
// characters there is none, so we insert a fold (which adds a space) rather than emit an
// over-long line.
pub fn field(name: &str, value: &str) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + 8);
    let mut col = name.len() + 1;
    out.push_str(name);
    out.push(':');
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        let mut rest = word;
        loop {
            let take = floor_char_boundary(rest, HARD_LIMIT);
            let (chunk, tail) = rest.split_at(take);
            if col + 1 + chunk.len() > FOLD_AT && col > name.len() + 1 {
                out.push_str("\r\n");
                col = 0;
            }
            out.push(' ');
            out.push_str(chunk);
            col += 1 + chunk.len();
            if tail.is_empty() {
                break;
            }
            rest = tail;
            col = FOLD_AT; // force a fold before the next piece
        }
    }
    out.push_str("\r\n");
    out
}

/// The largest index ≤ `max` that is a char boundary of `s` (at least one char).
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    if i == 0 { s.chars().next().map_or(s.len(), char::len_utf8) } else { i }
}

/// Every line ending (CRLF, bare LF, bare CR) as CRLF (RFC 5322 §2.3).
pub fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The header section of a message: everything up to the first empty line (RFC 5322 §2.1),
/// with CRLF endings. A message without an empty line is all header.
pub fn header_section(msg: &[u8]) -> Vec<u8> {
    let msg = crlf(msg);
    if msg.starts_with(b"\r\n") {
        return Vec::new();
    }
    match find(&msg, b"\r\n\r\n") {
        Some(i) => msg[..i + 2].to_vec(),
        None => msg,
    }
}

/// The Content-Transfer-Encoding that honestly labels `data` (RFC 2045 §6.2).
pub fn transfer_encoding(data: &[u8]) -> &'static str {
    let long = data.split(|&b| b == b'\n').any(|l| l.len() > 998);
    if long || data.contains(&0) {
        "binary"
    } else if data.is_ascii() {
        "7bit"
    } else {
        "8bit"
    }
}

/// Quoted-printable (RFC 2045 §6.7) of UTF-8 text whose lines end in `\n`; output lines
/// end in CRLF and stay within 76 characters.
pub fn quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let bytes = line.trim_end_matches('\r').as_bytes();
        let mut col = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let width = if literal { 1 } else { 3 };
            // Keep room for the soft break's "=" (rule 5).
            if col + width > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            col += width;
        }
        if n + 1 < lines.len() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A boundary (RFC 2046 §5.1.1) that occurs in none of `parts`: derived from `seed`, and
/// changed until unique.
pub fn boundary(seed: &[u8], parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in seed {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut n: u64 = 0;
    loop {
        let candidate = format!("=_homing_{hash:016x}_{n}");
        if parts.iter().all(|p| find(p, candidate.as_bytes()).is_none()) {
            return candidate;
        }
        n += 1;
        hash = hash.rotate_left(17) ^ n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_long_values_at_spaces() {
        let v = "word ".repeat(40);
        let f = field("Diagnostic-Code", &v);
        assert!(f.ends_with("\r\n"));
        for line in f.trim_end().split("\r\n") {
            assert!(line.len() <= 78, "{line:?}");
            assert!(!line.trim().is_empty());
        }
        let unfolded = f.replace("\r\n", "");
        assert_eq!(unfolded.trim_end(), format!("Diagnostic-Code: {}", v.trim_end()));
    }

    #[test]
    fn splits_runs_without_spaces() {
        let f = field("X", &"é".repeat(2000));
        assert!(f.split("\r\n").all(|l| l.len() <= 998));
    }

    #[test]
    fn sanitises_line_breaks() {
        assert_eq!(one_line("a\r\nb\n\tc\0d"), "a b c d");
        assert_eq!(ascii("bö"), "b\\x{F6}");
        assert_eq!(address("<bö@x>"), "utf-8; b\\x{F6}@x");
        assert_eq!(address("a@b"), "rfc822; a@b");
    }

    #[test]
    fn crlf_normalises_every_ending() {
        assert_eq!(crlf(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd");
        assert_eq!(header_section(b"A: 1\nB: 2\n\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_section(b"\r\nbody"), b"");
    }

    #[test]
    fn quoted_printable_is_short_lined_and_ascii() {
        let qp = quoted_printable(&format!("{}\nend \nnaïve=", "x".repeat(200)));
        let s = String::from_utf8(qp).unwrap();
        assert!(s.split("\r\n").all(|l| l.len() <= 76));
        assert!(s.contains("end=20"));
        assert!(s.contains("na=C3=AFve=3D"));
    }

    #[test]
    fn boundary_avoids_content() {
        let first = boundary(b"seed", &[]);
        let b = boundary(b"seed", &[first.as_bytes()]);
        assert_ne!(first, b);
    }
}
