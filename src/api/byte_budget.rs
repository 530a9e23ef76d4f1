//! A token bucket of bytes, for the budgets of large bodies read and of
//! unread bodies drained.

use std::sync::Mutex;

/// A token bucket of bytes: it refills at `rate` a second up to one
/// second's worth, admits a body while it is positive and charges it in
/// full, so that over time no more than `rate` bytes a second (plus one
/// body) get through, and a body larger than a second's worth still can.
#[derive(Debug)]
pub struct ByteBudget {
    rate: f64,
    /// The balance in bytes and when it was last refilled.
    state: Mutex<(f64, std::time::Instant)>,
}

impl ByteBudget {
    pub fn new(rate: u64) -> Self {
        #[allow(clippy::cast_precision_loss)] // rates far below 2^52
        let rate = rate as f64;
        Self {
            rate,
            state: Mutex::new((rate, std::time::Instant::now())),
        }
    }

    /// Whether a body may start now; if so, `bytes` are charged.
    pub fn admit(&self, bytes: usize) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        let (balance, since) = *state;
        let balance =
            (balance + now.duration_since(since).as_secs_f64() * self.rate).min(self.rate);
        if balance <= 0.0 {
            *state = (balance, now);
            return false;
        }
        #[allow(clippy::cast_precision_loss)]
        let charged = balance - bytes as f64;
        *state = (charged, now);
        true
    }

    /// Charges `bytes` already admitted.
    pub fn charge(&self, bytes: usize) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        #[allow(clippy::cast_precision_loss)]
        let bytes = bytes as f64;
        state.0 -= bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_budget_refills_at_its_rate() {
        let budget = ByteBudget::new(1000);
        assert!(budget.admit(1500));
        assert!(!budget.admit(1));
        // 500 bytes of debt, refilled at 1000 a second: positive after 0.5 s.
        {
            let mut state = budget.state.lock().unwrap();
            state.1 -= std::time::Duration::from_millis(600);
        }
        assert!(budget.admit(10));
        budget.charge(5000);
        assert!(!budget.admit(1));
    }
}
