//! Recency, frequency and monetary value of one customer over a calibration period: the
//! summary that the BG/NBD and Gamma-Gamma models are fitted on (Fader, Hardie & Lee 2005).
//!
//! Everything is counted in whole days and exact minor units; the model times (in a
//! [`TimeUnit`], e.g. weeks) and the mean repeat value are derived from those on request.

use super::bgnbd::FrequencyRecency;
use super::gamma_gamma::SpendHistory;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// One purchase: the calendar day it happened (in the program's time zone) and what the
/// customer paid, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    /// The calendar day of the purchase.
    pub date: NaiveDate,
    /// What was paid, in minor units; not negative.
    pub value_minor: i64,
}

/// The length of one model period, in whole days: [`TimeUnit::WEEK`] (7 days) in the
/// published CDNOW analyses. A time of `d` days is `d / length_days` periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeUnit {
    length_days: u32,
}

impl TimeUnit {
    /// Periods of one day.
    pub const DAY: TimeUnit = TimeUnit { length_days: 1 };
    /// Periods of seven days, as in the BG/NBD and Gamma-Gamma papers.
    pub const WEEK: TimeUnit = TimeUnit { length_days: 7 };

    /// A period of `length_days` days; `None` for zero.
    pub fn days(length_days: u32) -> Option<TimeUnit> {
        (length_days > 0).then_some(TimeUnit { length_days })
    }

    /// The number of days in one period.
    pub fn length_days(self) -> u32 {
        self.length_days
    }

    /// `days / length_days`, as a real number of periods.
    pub fn periods(self, days: i64) -> f64 {
        days as f64 / f64::from(self.length_days)
    }
}

/// Why purchases could not be summarised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RfmError {
    #[error("no purchase on or before the calibration end {calibration_end}")]
    NoPurchaseInPeriod { calibration_end: NaiveDate },
    #[error("the purchase on {date} has a negative value ({value_minor} minor units)")]
    NegativeValue { date: NaiveDate, value_minor: i64 },
    #[error("the purchase values add up to more than an i64 of minor units")]
    ValueOverflow,
}

/// One customer's calibration-period summary, in the notation of the BG/NBD paper.
///
/// Definitions (a "purchase day" is a calendar day with at least one purchase; several
/// purchases on one day count as one purchase whose value is their sum):
/// - `first_purchase`: the first purchase day;
/// - `repeat_days` = **x**: the number of purchase days after the first, up to and including
///   the calibration end;
/// - `recency_days`: days from the first purchase day to the last one (0 when x = 0);
/// - `age_days`: days from the first purchase day to the calibration end;
/// - `repeat_value_minor`: the summed value of the x repeat purchase days (the first day's
///   value is excluded, as in the Gamma-Gamma paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmSummary {
    /// The first purchase day.
    pub first_purchase: NaiveDate,
    /// x: purchase days after the first, up to the calibration end.
    pub repeat_days: u32,
    /// Days from the first purchase day to the last one.
    pub recency_days: i64,
    /// Days from the first purchase day to the calibration end.
    pub age_days: i64,
    /// Summed value of the repeat purchase days, in minor units.
    pub repeat_value_minor: i64,
    /// The period in which [`RfmSummary::t_x`] and [`RfmSummary::t`] are measured.
    pub unit: TimeUnit,
}

impl RfmSummary {
    /// x: the number of repeat purchase days.
    pub fn x(&self) -> u32 {
        self.repeat_days
    }

    /// t_x = recency_days / unit length: time of the last purchase since the first.
    pub fn t_x(&self) -> f64 {
        self.unit.periods(self.recency_days)
    }

    /// T = age_days / unit length: time from the first purchase to the calibration end.
    pub fn t(&self) -> f64 {
        self.unit.periods(self.age_days)
    }

    /// z̄ = repeat_value_minor / x, the mean value of a repeat purchase day, in minor units
    /// (a statistic, not an amount: it is not rounded). 0 when x = 0.
    pub fn zbar_minor(&self) -> f64 {
        if self.repeat_days == 0 {
            0.0
        } else {
            self.repeat_value_minor as f64 / f64::from(self.repeat_days)
        }
    }

    /// The (x, t_x, T) that BG/NBD is fitted on.
    pub fn frequency_recency(&self) -> FrequencyRecency {
        FrequencyRecency::new(self.repeat_days, self.t_x(), self.t())
            .expect("a summary's recency lies between 0 and its age")
    }

    /// The (x, z̄) that Gamma-Gamma is fitted on; `None` for a customer without a repeat
    /// purchase or whose repeat purchases were all worth nothing (z̄ = 0 has no likelihood).
    pub fn spend(&self) -> Option<SpendHistory> {
        SpendHistory::new(self.repeat_days, self.zbar_minor()).ok()
    }
}

/// Summarises a customer's purchases (in any order) over the calibration period that ends on
/// `calibration_end` inclusive; later purchases are ignored. See [`RfmSummary`] for the
/// definitions.
pub fn summarise(
    purchases: &[Purchase],
    calibration_end: NaiveDate,
    unit: TimeUnit,
) -> Result<RfmSummary, RfmError> {
    let mut days: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for p in purchases.iter().filter(|p| p.date <= calibration_end) {
        if p.value_minor < 0 {
            return Err(RfmError::NegativeValue {
                date: p.date,
                value_minor: p.value_minor,
            });
        }
        let day = days.entry(p.date).or_insert(0);
        *day = day
            .checked_add(p.value_minor)
            .ok_or(RfmError::ValueOverflow)?;
    }
    let mut iter = days.iter();
    let Some((&first_purchase, _)) = iter.next() else {
        return Err(RfmError::NoPurchaseInPeriod { calibration_end });
    };
    let mut repeat_days = 0u32;
    let mut repeat_value_minor = 0i64;
    let mut last = first_purchase;
    for (&date, &value) in iter {
        repeat_days += 1;
        repeat_value_minor = repeat_value_minor
            .checked_add(value)
            .ok_or(RfmError::ValueOverflow)?;
        last = date;
    }
    Ok(RfmSummary {
        first_purchase,
        repeat_days,
        recency_days: (last - first_purchase).num_days(),
        age_days: (calibration_end - first_purchase).num_days(),
        repeat_value_minor,
        unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn buy(date: NaiveDate, value_minor: i64) -> Purchase {
        Purchase { date, value_minor }
    }

    #[test]
    fn purchases_on_one_day_count_once_and_later_ones_are_ignored() {
        // By hand: purchase days Jan 1 (1000 + 500), Jan 8 (2000), Jan 22 (700 + 300); the
        // Mar 1 purchase is after the end (Feb 5). x = 2 repeat days; last purchase 21 days
        // after the first: t_x = 21/7 = 3 weeks; Jan 1 → Feb 5 is 35 days: T = 5 weeks;
        // repeat value 2000 + 1000 = 3000, z̄ = 3000 / 2 = 1500 minor units.
        let purchases = [
            buy(day(2024, 1, 22), 700),
            buy(day(2024, 1, 1), 1000),
            buy(day(2024, 3, 1), 9999),
            buy(day(2024, 1, 8), 2000),
            buy(day(2024, 1, 1), 500),
            buy(day(2024, 1, 22), 300),
        ];
        let s = summarise(&purchases, day(2024, 2, 5), TimeUnit::WEEK).unwrap();
        assert_eq!(s.first_purchase, day(2024, 1, 1));
        assert_eq!(s.x(), 2);
        assert_eq!(s.recency_days, 21);
        assert_eq!(s.age_days, 35);
        assert_eq!(s.repeat_value_minor, 3000);
        assert_eq!(s.t_x(), 3.0);
        assert_eq!(s.t(), 5.0);
        assert_eq!(s.zbar_minor(), 1500.0);
        assert_eq!(s.spend().unwrap().zbar_minor(), 1500.0);
    }

    #[test]
    fn a_single_purchase_day_has_no_repeat_and_no_spend_history() {
        // By hand: in days, T = Mar 1 − Feb 20 = 10 days (2024 is a leap year), t_x = 0.
        let s = summarise(
            &[buy(day(2024, 2, 20), 10), buy(day(2024, 2, 20), 5)],
            day(2024, 3, 1),
            TimeUnit::DAY,
        )
        .unwrap();
        assert_eq!((s.x(), s.t_x(), s.t()), (0, 0.0, 10.0));
        assert_eq!(s.zbar_minor(), 0.0);
        assert_eq!(s.spend(), None);
    }

    #[test]
    fn a_customer_without_purchases_in_the_period_is_refused() {
        let end = day(2024, 1, 1);
        assert_eq!(
            summarise(&[buy(day(2024, 1, 2), 10)], end, TimeUnit::WEEK),
            Err(RfmError::NoPurchaseInPeriod {
                calibration_end: end
            })
        );
        assert_eq!(
            summarise(&[], end, TimeUnit::WEEK),
            Err(RfmError::NoPurchaseInPeriod {
                calibration_end: end
            })
        );
    }

    #[test]
    fn negative_values_and_overflowing_sums_are_refused() {
        let end = day(2024, 1, 31);
        assert!(matches!(
            summarise(&[buy(day(2024, 1, 2), -1)], end, TimeUnit::WEEK),
            Err(RfmError::NegativeValue { .. })
        ));
        let huge = [buy(day(2024, 1, 2), i64::MAX), buy(day(2024, 1, 2), 1)];
        assert_eq!(
            summarise(&huge, end, TimeUnit::WEEK),
            Err(RfmError::ValueOverflow)
        );
    }

    #[test]
    fn a_time_unit_has_at_least_one_day() {
        assert_eq!(TimeUnit::days(0), None);
        assert_eq!(TimeUnit::days(7), Some(TimeUnit::WEEK));
        assert_eq!(TimeUnit::days(30).unwrap().periods(45), 1.5);
    }
}
