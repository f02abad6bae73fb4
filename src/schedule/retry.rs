//! When to try again, when to warn, when to give up (RFC 5321 §4.5.4.1).

use std::time::{Duration, SystemTime};

/// The retry schedule: waits that grow from minutes to hours, jittered so that messages
/// deferred together do not all come back at once, and a lifetime after which homing gives up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Waits after the 1st, 2nd, … failed attempt; the last repeats.
    pub intervals: Vec<Duration>,
    /// Fraction (0..=0.5) by which each wait may vary either way.
    pub jitter: f64,
    /// Time from arrival after which a still-deferred recipient is bounced as expired.
    pub lifetime: Duration,
    /// Time from arrival after which the sender is warned once; `None` = never.
    pub delay_warning: Option<Duration>,
}

impl RetryPolicy {
    /// The next attempt after `attempts` failed ones (1 = the first attempt failed), never
    /// later than the expiry: the last attempt happens at the deadline itself.
    /// `rand01` is a uniform random number in [0, 1): injected so tests are exact.
    pub fn next_attempt(
        &self,
        attempts: u32,
        now: SystemTime,
        received: SystemTime,
        rand01: f64,
    ) -> SystemTime {
        let idx = (attempts.max(1) as usize - 1).min(self.intervals.len().saturating_sub(1));
        let base = self.intervals.get(idx).copied().unwrap_or(Duration::from_secs(300));
        let factor = 1.0 + self.jitter * (2.0 * rand01.clamp(0.0, 1.0) - 1.0);
        let wait = base.mul_f64(factor.clamp(0.0, 2.0));
        now.checked_add(wait).unwrap_or(now).min(self.expires_at(received).max(now))
    }

    pub fn expires_at(&self, received: SystemTime) -> SystemTime {
        // A corrupt arrival time or an absurd lifetime must not panic the scheduler.
        received.checked_add(self.lifetime).unwrap_or(received)
    }

    pub fn is_expired(&self, received: SystemTime, now: SystemTime) -> bool {
        now >= self.expires_at(received)
    }

    /// Whether a delay warning is due now for a message that arrived at `received`.
    pub fn delay_warning_due(&self, received: SystemTime, now: SystemTime) -> bool {
        match self.delay_warning {
            Some(w) if !w.is_zero() => now.duration_since(received).map(|d| d >= w).unwrap_or(false),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            intervals: vec![Duration::from_secs(300), Duration::from_secs(600), Duration::from_secs(3600)],
            jitter: 0.2,
            lifetime: Duration::from_secs(5 * 86_400),
            delay_warning: Some(Duration::from_secs(4 * 3600)),
        }
    }

    #[test]
    fn waits_grow_then_repeat_and_jitter_stays_in_bounds() {
        let p = policy();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |n, r| p.next_attempt(n, t0, t0, r).duration_since(t0).unwrap().as_secs();
        assert_eq!(at(1, 0.5), 300);
        assert_eq!(at(2, 0.5), 600);
        assert_eq!(at(3, 0.5), 3600);
        assert_eq!(at(9, 0.5), 3600);
        assert_eq!(at(1, 0.0), 240);
        assert_eq!(at(1, 0.999_999), 359);
    }

    #[test]
    fn never_schedules_past_the_deadline() {
        let p = policy();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let near_end = t0 + Duration::from_secs(5 * 86_400 - 60);
        assert_eq!(p.next_attempt(7, near_end, t0, 0.5), p.expires_at(t0));
        assert!(!p.is_expired(t0, near_end));
        assert!(p.is_expired(t0, p.expires_at(t0)));
    }

    #[test]
    fn delay_warning_after_its_time_and_off_when_zero() {
        let mut p = policy();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!p.delay_warning_due(t0, t0 + Duration::from_secs(3 * 3600)));
        assert!(p.delay_warning_due(t0, t0 + Duration::from_secs(4 * 3600)));
        p.delay_warning = Some(Duration::ZERO);
        assert!(!p.delay_warning_due(t0, t0 + Duration::from_secs(10 * 3600)));
    }
}
