//! A bound on the log lines one kind of refusal may write: a client repeating a refused
//! request (a rebinding page in a loop, a scanner) cannot flood the log. Past the budget the
//! lines are counted instead, and the next line written says how many were left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LogBudget {
    lines: u32,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    window_start: Option<Instant>,
    written: u32,
    left_out: u64,
}

impl LogBudget {
    /// At most `lines` lines per `window`.
    pub const fn new(lines: u32, window: Duration) -> LogBudget {
        LogBudget {
            lines,
            window,
            state: Mutex::new(State {
                window_start: None,
                written: 0,
                left_out: 0,
            }),
        }
    }

    /// Whether to write a line at `now`: `Some(n)` with the lines left out since the last
    /// one written, `None` to count this one and stay quiet.
    pub fn take(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = state
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            state.window_start = Some(now);
            state.written = 0;
        }
        if state.written >= self.lines {
            state.left_out += 1;
            return None;
        }
        state.written += 1;
        Some(std::mem::take(&mut state.left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_counted_and_reported_with_the_next_one() {
        let budget = LogBudget::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let first: Vec<_> = (0..10).map(|_| budget.take(t0)).collect();
        assert_eq!(&first[..3], [Some(0); 3]);
        assert!(first[3..].iter().all(Option::is_none));
        // Still inside the window: still quiet, still counted.
        assert_eq!(budget.take(t0 + Duration::from_secs(9)), None);
        // A new window: the first line carries the 8 left out.
        assert_eq!(budget.take(t0 + Duration::from_secs(10)), Some(8));
        assert_eq!(budget.take(t0 + Duration::from_secs(11)), Some(0));
    }
}
