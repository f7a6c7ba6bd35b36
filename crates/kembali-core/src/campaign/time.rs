//! Local time for campaigns: an order's instant seen in a zone, birthdays, and the starts of
//! the customer's day, week and month (so callers sum cap usage over the same periods the
//! rules mean). Every instant is an argument; nothing here reads a clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// An instant as seen in one zone, reduced to what windows need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moment {
    pub date: NaiveDate,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    pub second: u32,
}

impl Moment {
    pub fn new(at: DateTime<Utc>, zone: Tz) -> Moment {
        let local = at.with_timezone(&zone).naive_local();
        Moment {
            date: local.date(),
            weekday: local.weekday().num_days_from_monday() as u8,
            second: local.num_seconds_from_midnight(),
        }
    }
}

/// The date a birthday falls on in `year`: 29 February becomes 28 February in common years
/// (the customer still has a birthday, and still in February).
fn birthday_in(birthday: NaiveDate, year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, birthday.month(), birthday.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
        .expect("28 February exists every year")
}

/// Days between `date` and the nearest occurrence of the birthday (before or after).
pub(crate) fn days_from_birthday(birthday: NaiveDate, date: NaiveDate) -> u32 {
    let y = date.year();
    [y - 1, y, y + 1]
        .into_iter()
        .map(|year| {
            (date - birthday_in(birthday, year))
                .num_days()
                .unsigned_abs()
        })
        .min()
        .expect("three candidates") as u32
}

/// The starts (as instants) of the local day, ISO week (Monday) and month containing `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodStarts {
    pub day: DateTime<Utc>,
    pub week: DateTime<Utc>,
    pub month: DateTime<Utc>,
}

/// Where the customer's day, week and month began for an order at `at` in `zone`: usage
/// "today" is cashback earned in `[day, at)`, and so on. A midnight skipped by a daylight
/// saving change starts the day at the first local time that exists.
pub fn period_starts(at: DateTime<Utc>, zone: Tz) -> PeriodStarts {
    let date = at.with_timezone(&zone).date_naive();
    let week = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
    let month = date.with_day(1).expect("day 1 exists");
    PeriodStarts {
        day: local_start(date, zone),
        week: local_start(week, zone),
        month: local_start(month, zone),
    }
}

fn local_start(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight: NaiveDateTime = date.and_hms_opt(0, 0, 0).expect("midnight");
    // Transitions move clocks by at most a few hours; step forward a quarter hour at a time
    // until the local time exists.
    (0..=24 * 4)
        .map(|q| midnight + Duration::minutes(15 * q))
        .find_map(|t| zone.from_local_datetime(&t).earliest())
        .expect("a day has local times that exist")
        .with_timezone(&Utc)
}

/// The customer's favourite category from per-category spend over a lookback: the most spend,
/// ties to the alphabetically first name; none if nothing was spent.
pub fn favourite_category<'a, C: Ord + 'a>(
    spend: impl IntoIterator<Item = (&'a C, i64)>,
) -> Option<&'a C> {
    spend
        .into_iter()
        .filter(|(_, s)| *s > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_leap_day_birthday_is_celebrated_on_28_february_in_common_years() {
        let b = d("2000-02-29");
        assert_eq!(days_from_birthday(b, d("2025-02-28")), 0);
        assert_eq!(days_from_birthday(b, d("2025-03-01")), 1);
        assert_eq!(days_from_birthday(b, d("2024-02-29")), 0);
        assert_eq!(days_from_birthday(b, d("2024-02-28")), 1);
    }

    #[test]
    fn birthday_distance_wraps_around_new_year() {
        assert_eq!(days_from_birthday(d("1990-12-30"), d("2026-01-02")), 3);
        assert_eq!(days_from_birthday(d("1990-01-02"), d("2025-12-30")), 3);
    }

    #[test]
    fn periods_start_at_local_midnight_monday_and_the_first() {
        let zone: Tz = "America/Sao_Paulo".parse().unwrap();
        // Wednesday 2025-11-26 01:30 UTC is Tuesday 22:30 in São Paulo (UTC−3).
        let at = Utc.with_ymd_and_hms(2025, 11, 26, 1, 30, 0).unwrap();
        let p = period_starts(at, zone);
        assert_eq!(p.day, Utc.with_ymd_and_hms(2025, 11, 25, 3, 0, 0).unwrap());
        assert_eq!(p.week, Utc.with_ymd_and_hms(2025, 11, 24, 3, 0, 0).unwrap());
        assert_eq!(p.month, Utc.with_ymd_and_hms(2025, 11, 1, 3, 0, 0).unwrap());
    }

    #[test]
    fn a_day_whose_midnight_was_skipped_starts_at_one_in_the_morning() {
        // São Paulo sprang forward at midnight on 2018-11-04: 00:00 became 01:00 (UTC−2).
        let zone: Tz = "America/Sao_Paulo".parse().unwrap();
        let at = Utc.with_ymd_and_hms(2018, 11, 4, 12, 0, 0).unwrap();
        assert_eq!(
            period_starts(at, zone).day,
            Utc.with_ymd_and_hms(2018, 11, 4, 3, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_favourite_category_has_the_most_spend_and_ties_go_to_the_first_name() {
        let spend = [("toys", 500), ("books", 900), ("garden", 900)];
        assert_eq!(
            favourite_category(spend.iter().map(|(c, s)| (c, *s))),
            Some(&"books")
        );
        let none: [(&str, i64); 1] = [("toys", 0)];
        assert_eq!(favourite_category(none.iter().map(|(c, s)| (c, *s))), None);
    }
}
