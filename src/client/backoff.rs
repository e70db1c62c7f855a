//! Reconnect delays: capped exponential backoff with full jitter, as a pure
//! function of the attempt number and a uniform random draw, so it is tested
//! without a clock.

use std::time::Duration;

/// How long to wait between reconnect attempts.
///
/// The defaults (0.5 s growing by 1.5 to 30 s) were chosen by measuring a
/// hub restarted under 10,000 clients (`riskwatch-load storm`,
/// docs/RELIABILITY.md): with 1 s doubling, the 99th percentile came back
/// 4.2–4.6 s after the new hub started and the last after 15 s (ceilings
/// of 8 and 16 s after a second of refusals); with these, 2.1 s and 4.5 s,
/// and a hub on two cores took the quicker return without trouble. Away
/// longer, the delays reach the same 30 s cap after about a minute and a
/// half instead of a minute.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// Ceiling of the first delay. Default 0.5 s.
    pub initial: Duration,
    /// Growth per attempt. Default 1.5.
    pub factor: f64,
    /// Largest ceiling. Default 30 s.
    pub max: Duration,
    /// A connection that stayed up this long resets the attempt count.
    /// Default 60 s.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            factor: 1.5,
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl BackoffConfig {
    pub fn initial(mut self, d: Duration) -> Self {
        self.initial = d;
        self
    }
    pub fn factor(mut self, f: f64) -> Self {
        self.factor = f;
        self
    }
    pub fn max(mut self, d: Duration) -> Self {
        self.max = d;
        self
    }
    pub fn reset_after(mut self, d: Duration) -> Self {
        self.reset_after = d;
        self
    }

    /// The ceiling for attempt `n` (0-based): `min(max, initial × factorⁿ)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exp = factor.powi(attempt.min(64) as i32);
        let secs = self.initial.as_secs_f64() * exp;
        let max = self.max.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// Full jitter: a delay drawn uniformly from `[0, ceiling(attempt)]`,
    /// given a uniform draw `u` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, u: f64) -> Duration {
        let u = if (0.0..1.0).contains(&u) { u } else { 0.5 };
        self.ceiling(attempt).mul_f64(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_grow_up_to_the_cap() {
        let b = BackoffConfig::default();
        let ms: Vec<u128> = (0..12).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(
            ms,
            [
                500, 750, 1125, 1687, 2531, 3796, 5695, 8542, 12814, 19221, 28832, 30000
            ]
        );
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(30));
        let doubling = BackoffConfig::default()
            .initial(Duration::from_secs(1))
            .factor(2.0);
        let secs: Vec<u64> = (0..8).map(|n| doubling.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn jitter_stays_within_zero_and_the_ceiling() {
        let b = BackoffConfig::default()
            .initial(Duration::from_secs(1))
            .factor(2.0);
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(4));
        assert!(b.delay(3, 0.999_999) < Duration::from_secs(8));
        // Out-of-range draws are clamped, never a panic or a huge delay.
        assert!(b.delay(3, f64::NAN) <= Duration::from_secs(8));
        assert!(b.delay(3, 7.0) <= Duration::from_secs(8));
    }

    #[test]
    fn nonsense_factors_do_not_explode() {
        let b = BackoffConfig::default().factor(f64::INFINITY);
        assert_eq!(
            b.ceiling(5),
            Duration::from_millis(500),
            "taken as 1: no growth"
        );
        let b = BackoffConfig::default().factor(1e300);
        assert_eq!(b.ceiling(5), Duration::from_secs(30));
    }
}
