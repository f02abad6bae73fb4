//! Durations written the way operators write them: `30s`, `5m`, `1h20m`, `5d`, `250ms`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and writes as a human string in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a duration: write a number and a unit (ms, s, m, h, d), e.g. \"30s\", \"1h20m\", \"5d\""
)]
pub struct BadDuration(String);

impl FromStr for HumanDuration {
    type Err = BadDuration;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDuration(s.to_string());
        let t = s.trim();
        if t.is_empty() {
            return Err(bad());
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = match &rest[..unit_len] {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                "d" => Duration::from_secs(n.saturating_mul(86_400)),
                _ => return Err(bad()),
            };
            total = total.saturating_add(unit);
            rest = &rest[unit_len..];
        }
        Ok(Self(total))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return write!(f, "0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut s = (ms / 1000) as u64;
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= size {
                write!(f, "{}{unit}", s / size)?;
                s %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, secs) in [("30s", 30), ("5m", 300), ("1h20m", 4800), ("5d", 432_000), ("0s", 0)] {
            let d: HumanDuration = s.parse().unwrap();
            assert_eq!(d.get(), Duration::from_secs(secs));
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().get(), Duration::from_millis(250));
        for bad in ["", "5", "m", "5 m", "5y", "-1s", "1.5h"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad:?}");
        }
    }
}
