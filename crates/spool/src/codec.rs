//! Text encodings shared by the message header and the state log: percent
//! encoding for values and a fixed form for timestamps. Both are chosen so a
//! human can read the files with `less` and a parser can never be confused by
//! a value containing a separator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Percent-encode every byte that could end a token or a line, or that is not
/// printable ASCII. UTF-8 beyond ASCII is encoded too: the files stay plain
/// ASCII whatever the sender put in an address.
pub fn pct_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// Inverse of [`pct_encode`]; the result must be UTF-8.
pub fn pct_decode(token: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(token.len());
    let mut i = 0;
    while i < token.len() {
        let b = token[i];
        if b == b'%' {
            let hi = token.get(i + 1).and_then(|&c| hex_digit(c));
            let lo = token.get(i + 2).and_then(|&c| hex_digit(c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err("bad percent escape"),
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(b);
            i += 1;
        } else {
            return Err("unencoded byte in value");
        }
    }
    String::from_utf8(out).map_err(|_| "value is not UTF-8")
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `<seconds>.<9-digit nanoseconds>` since the Unix epoch, with a leading `-`
/// before the epoch, so every `SystemTime` round-trips exactly.
pub fn time_encode(t: SystemTime, out: &mut String) {
    use std::fmt::Write;
    let (sign, d) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ("", d),
        Err(e) => ("-", e.duration()),
    };
    // Writing to a String cannot fail.
    let _ = write!(out, "{sign}{}.{:09}", d.as_secs(), d.subsec_nanos());
}

pub fn time_decode(token: &[u8]) -> Result<SystemTime, &'static str> {
    const BAD: &str = "bad timestamp";
    let (neg, rest) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let dot = rest.iter().position(|&b| b == b'.').ok_or(BAD)?;
    let (secs, nanos) = (&rest[..dot], &rest[dot + 1..]);
    if nanos.len() != 9 {
        return Err(BAD);
    }
    let secs = parse_u64(secs).ok_or(BAD)?;
    let nanos = u32::try_from(parse_u64(nanos).ok_or(BAD)?).map_err(|_| BAD)?;
    if nanos >= 1_000_000_000 {
        return Err(BAD);
    }
    let d = Duration::new(secs, nanos);
    let t = if neg { UNIX_EPOCH.checked_sub(d) } else { UNIX_EPOCH.checked_add(d) };
    t.ok_or("timestamp out of range")
}

/// Plain decimal, digits only (no sign, no spaces), at most 20 digits.
pub fn parse_u64(token: &[u8]) -> Option<u64> {
    if token.is_empty() || token.len() > 20 || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Exactly eight hex digits.
pub fn parse_hex32(token: &[u8]) -> Option<u32> {
    if token.len() != 8 || !token.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(token).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_round_trip() {
        for s in ["", "a b", "100%", "x\r\ny", "héllo", "rfc822;a=b@c", "\u{0}"] {
            let mut enc = String::new();
            pct_encode(s, &mut enc);
            assert!(enc.bytes().all(|b| b.is_ascii_graphic()), "{enc}");
            assert_eq!(pct_decode(enc.as_bytes()).unwrap(), s);
        }
        assert!(pct_decode(b"%G0").is_err());
        assert!(pct_decode(b"%4").is_err());
        assert!(pct_decode(b"a b").is_err());
        assert!(pct_decode(b"%FF").is_err());
    }

    #[test]
    fn time_round_trip() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 1),
            SystemTime::now(),
        ] {
            let mut s = String::new();
            time_encode(t, &mut s);
            assert_eq!(time_decode(s.as_bytes()).unwrap(), t, "{s}");
        }
        for bad in ["", "1", "1.5", "a.000000000", "1.1000000000", "--1.000000000"] {
            assert!(time_decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
