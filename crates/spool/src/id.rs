//! Message identifiers: 128 bits written as 26 Crockford base32 characters,
//! laid out like a ULID (48-bit Unix milliseconds, then 80 further bits).
//!
//! Why this shape: the id is the file name, so it must be safe in any file
//! system (no case tricks, no punctuation), sort by arrival so `ls queue/` is
//! chronological, and be unique across threads and across restarts without a
//! persistent counter. Within one millisecond the low 80 bits count up from a
//! random start, so ids from one process are strictly increasing; a fresh
//! random start every millisecond keeps two processes apart.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base32 alphabet: no I, L, O, U, so ids survive being read aloud.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 26;
const LOW_BITS: u32 = 80;
const LOW_MASK: u128 = (1u128 << LOW_BITS) - 1;
const MAX_MS: u64 = (1u64 << 48) - 1;

/// A spooled message's identity and file name stem. Ordered by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(String);

/// Why a string is not a [`MessageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid message id {value:?}: {reason}; an id is 26 characters of Crockford base32 \
     (0-9, A-Z without I, L, O, U), upper case, starting with 0-7"
)]
pub struct ParseIdError {
    pub value: String,
    pub reason: &'static str,
}

impl MessageId {
    /// A new id, greater than every id this process made before.
    pub fn generate() -> MessageId {
        MessageId(encode(next_value()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MessageId {
    type Err = ParseIdError;

    /// Strict: only the canonical upper-case form, because the id names a file
    /// and two spellings of one id must never name two files.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseIdError { value: s.chars().take(64).collect(), reason };
        if s.len() != LEN {
            return Err(err("wrong length"));
        }
        if !s.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(err("character outside the alphabet"));
        }
        // 26 * 5 = 130 bits; the top two must be zero for a 128-bit value.
        if s.as_bytes()[0] > b'7' {
            return Err(err("value exceeds 128 bits"));
        }
        Ok(MessageId(s.to_owned()))
    }
}

fn encode(v: u128) -> String {
    let mut out = String::with_capacity(LEN);
    for i in 0..LEN {
        let shift = 5 * (LEN - 1 - i);
        let digit = ((v >> shift) & 31) as usize;
        out.push(char::from(ALPHABET[digit]));
    }
    out
}

struct GenState {
    last_ms: u64,
    low: u128,
}

static GENERATOR: Mutex<GenState> = Mutex::new(GenState { last_ms: 0, low: 0 });

fn next_value() -> u128 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(MAX_MS).min(MAX_MS))
        .unwrap_or(0);
    // A poisoned lock only means another thread panicked mid-update; the state
    // is two integers and always usable.
    let mut st = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    if now_ms > st.last_ms {
        st.last_ms = now_ms;
        st.low = random_start();
    } else {
        // Same millisecond, or the clock stepped back: keep counting so ids
        // stay strictly increasing.
        st.low += 1;
        if st.low > LOW_MASK {
            st.last_ms = (st.last_ms + 1).min(MAX_MS);
            st.low = random_start();
        }
    }
    (u128::from(st.last_ms) << LOW_BITS) | st.low
}

/// 79 random bits: the top bit of the 80 stays clear so counting up within a
/// millisecond cannot overflow in practice.
fn random_start() -> u128 {
    // std's RandomState is seeded from the OS; hashing a counter through it
    // gives unpredictable words without an external crate.
    let words: [u64; 2] = std::array::from_fn(|i| {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        h.finish()
    });
    let v = (u128::from(words[0]) << 64) | u128::from(words[1]);
    v & (LOW_MASK >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn format_and_parse() {
        let id = MessageId::generate();
        assert_eq!(id.as_str().len(), 26);
        let back: MessageId = id.as_str().parse().unwrap();
        assert_eq!(back, id);
        assert_eq!(back.to_string(), id.as_str());
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "01ARZ3NDEKTSV4RRFFQ69G5FAI",
            "01arz3ndektsv4rrffq69g5fav",
            "81ARZ3NDEKTSV4RRFFQ69G5FAV",
            "../../../../etc/passwd0000",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
        assert!("7ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<MessageId>().is_ok());
    }

    #[test]
    fn encode_extremes() {
        assert_eq!(encode(0), "00000000000000000000000000");
        assert_eq!(encode(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    }

    #[test]
    fn sorted_and_unique_across_threads() {
        let per_thread: Vec<Vec<MessageId>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..8).map(|_| s.spawn(|| (0..5000).map(|_| MessageId::generate()).collect())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all = HashSet::new();
        for ids in &per_thread {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing");
            for id in ids {
                assert!(all.insert(id.clone()), "duplicate {id}");
            }
        }
        assert_eq!(all.len(), 40_000);
    }
}
