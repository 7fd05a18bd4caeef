//! Money as an integer: micro-cents (10⁻⁶ cent).
//!
//! Every cost Agentry records is an integer number of micro-cents, so sums over a ledger are exact
//! and budgets, rollups and `done.usage` agree to the last unit. A price of `p` cents per million
//! tokens is exactly `p` micro-cents per token. Wire shapes show cents (`costCents`, a number) for
//! the clients, derived from the integer.

use serde::{Deserialize, Serialize};

/// An amount of money in micro-cents (1 cent = 1,000,000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MicroCents(pub i64);

impl MicroCents {
    /// Micro-cents in one cent.
    pub const PER_CENT: i64 = 1_000_000;
    /// Nothing.
    pub const ZERO: MicroCents = MicroCents(0);

    /// The amount in cents, for wire shapes.
    pub fn as_cents(self) -> f64 {
        self.0 as f64 / Self::PER_CENT as f64
    }

    /// An amount given in cents (a wire value or a configured limit), rounded to the micro-cent.
    pub fn from_cents(cents: f64) -> MicroCents {
        if !cents.is_finite() {
            return MicroCents::ZERO;
        }
        MicroCents((cents * Self::PER_CENT as f64).round() as i64)
    }

    /// `tokens` at `cents_per_million` cents per million tokens, rounded up to the micro-cent (a
    /// cost is never under-counted).
    pub fn for_tokens(tokens: u64, cents_per_million: f64) -> MicroCents {
        if tokens == 0 || !cents_per_million.is_finite() || cents_per_million <= 0.0 {
            return MicroCents::ZERO;
        }
        MicroCents((tokens as f64 * cents_per_million).ceil() as i64)
    }

    /// Saturating sum.
    pub fn saturating_add(self, other: MicroCents) -> MicroCents {
        MicroCents(self.0.saturating_add(other.0))
    }
}

impl std::ops::Add for MicroCents {
    type Output = MicroCents;
    fn add(self, other: MicroCents) -> MicroCents {
        self.saturating_add(other)
    }
}

impl std::ops::AddAssign for MicroCents {
    fn add_assign(&mut self, other: MicroCents) {
        *self = self.saturating_add(other);
    }
}

impl std::iter::Sum for MicroCents {
    fn sum<I: Iterator<Item = MicroCents>>(iter: I) -> MicroCents {
        iter.fold(MicroCents::ZERO, MicroCents::saturating_add)
    }
}

impl std::fmt::Display for MicroCents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}¢", self.as_cents())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million_tokens_are_micro_cents_per_token() {
        assert_eq!(MicroCents::for_tokens(1_000, 15.0), MicroCents(15_000));
        // 3 tokens at 7.5 ¢/M = 22.5 µ¢, rounded up.
        assert_eq!(MicroCents::for_tokens(3, 7.5), MicroCents(23));
        assert_eq!(MicroCents::for_tokens(0, 7.5), MicroCents::ZERO);
        assert_eq!(MicroCents::for_tokens(5, f64::NAN), MicroCents::ZERO);
    }

    #[test]
    fn cents_round_trip_exactly() {
        for micro in [0, 1, 7, 999_999, 1_000_000, 123_456_789_012] {
            assert_eq!(MicroCents::from_cents(MicroCents(micro).as_cents()), MicroCents(micro));
        }
        assert_eq!([MicroCents(2), MicroCents(3)].into_iter().sum::<MicroCents>(), MicroCents(5));
    }
}
