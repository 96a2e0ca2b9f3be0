//! A bound on the log lines a repeating event writes: a fault that repeats (a flood of
//! connections, descriptors run out) or a client repeating a refused request must not flood
//! the log too. Past the bound the events are counted, and the next line written says how
//! many it stands for.

use std::time::{Duration, Instant};

pub struct LogThrottle {
    lines: u32,
    interval: Duration,
    window_start: Option<Instant>,
    written: u32,
    unlogged: u64,
}

impl LogThrottle {
    /// At most `lines` lines per `interval`.
    pub const fn new(lines: u32, interval: Duration) -> LogThrottle {
        LogThrottle {
            lines,
            interval,
            window_start: None,
            written: 0,
            unlogged: 0,
        }
    }

    /// Count one event; `Some(n)` when a line is due now, `n` the events it stands for (this
    /// one and those left out since the last line).
    pub fn count(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if expired {
            self.window_start = Some(now);
            self.written = 0;
        }
        if self.written >= self.lines {
            return None;
        }
        self.written += 1;
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Forget the events left out so far (what they were part of was reported otherwise).
    pub fn forget(&mut self) {
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_bound_are_counted_and_reported_with_the_next_one() {
        let mut throttle = LogThrottle::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let first: Vec<_> = (0..10).map(|_| throttle.count(t0)).collect();
        assert_eq!(&first[..3], [Some(1); 3]);
        assert!(first[3..].iter().all(Option::is_none));
        // Still inside the interval: still quiet, still counted.
        assert_eq!(throttle.count(t0 + Duration::from_secs(9)), None);
        // A new interval: its first line stands for the 8 left out and itself.
        assert_eq!(throttle.count(t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(throttle.count(t0 + Duration::from_secs(11)), Some(1));
    }

    #[test]
    fn one_line_per_interval_counts_from_the_last_line() {
        let mut throttle = LogThrottle::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(throttle.count(t0), Some(1));
        assert_eq!(throttle.count(t0 + Duration::from_secs(3)), None);
        assert_eq!(throttle.count(t0 + Duration::from_secs(12)), Some(2));
        assert_eq!(throttle.count(t0 + Duration::from_secs(21)), None);
        throttle.forget();
        assert_eq!(throttle.count(t0 + Duration::from_secs(22)), Some(1));
    }
}
