//! Extraction windows: whole days, both ends inclusive, as a person writes them
//! (`2020-01-01`..`2020-01-31` is January).

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

/// How long the period of a scheduled run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Day,
    Month,
}

impl FromStr for Granularity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(Granularity::Day),
            "month" | "monthly" => Ok(Granularity::Month),
            other => Err(Error::Configuration(format!(
                "unknown window granularity {other:?}: expected \"day\" or \"month\""
            ))),
        }
    }
}

impl Window {
    pub fn new(start_date: NaiveDate, end_date: NaiveDate) -> Result<Self> {
        if end_date < start_date {
            return Err(Error::InvalidInput(format!(
                "window end_date {end_date} is before start_date {start_date}"
            )));
        }
        Ok(Window {
            start_date,
            end_date,
        })
    }

    /// The last complete period before `now` on the calendar of `tz`: yesterday, or the
    /// previous calendar month (a 01:30 Tokyo run is 16:30 UTC the day before).
    pub fn previous(granularity: Granularity, now: DateTime<Utc>, tz: Tz) -> Window {
        let today = local_date(now, tz);
        match granularity {
            Granularity::Day => {
                let d = today.pred_opt().unwrap_or(today);
                Window {
                    start_date: d,
                    end_date: d,
                }
            }
            Granularity::Month => {
                let first_this_month = today.with_day(1).unwrap_or(today);
                let end = first_this_month.pred_opt().unwrap_or(first_this_month);
                let start = end.with_day(1).unwrap_or(end);
                Window {
                    start_date: start,
                    end_date: end,
                }
            }
        }
    }

    /// Calendar months covering `start..=end`, clipped to it: what a catch-up run walks through.
    pub fn monthly(start: NaiveDate, end: NaiveDate) -> Result<Vec<Window>> {
        let whole = Window::new(start, end)?;
        Ok(Window::periods(Granularity::Month, whole.start_date, whole.end_date).collect())
    }

    /// The periods of `granularity` (days, calendar months) covering `start..=end`, oldest
    /// first, the first and last clipped to it; none when `end` is before `start`. Lazy: a
    /// catch-up years behind costs only the windows it takes.
    pub fn periods(
        granularity: Granularity,
        start: NaiveDate,
        end: NaiveDate,
    ) -> impl Iterator<Item = Window> {
        let mut cursor = Some(start);
        std::iter::from_fn(move || {
            let from = cursor.filter(|c| *c <= end)?;
            let period_end = match granularity {
                Granularity::Day => from,
                Granularity::Month => from
                    .with_day(1)
                    .and_then(|d| d.checked_add_months(Months::new(1)))
                    .and_then(|d| d.checked_sub_days(Days::new(1)))
                    .unwrap_or(end),
            };
            let to = period_end.min(end);
            cursor = to.succ_opt();
            Some(Window {
                start_date: from,
                end_date: to,
            })
        })
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.start_date <= d && d <= self.end_date
    }
}

/// The date of `now` on the calendar of `tz`.
pub fn local_date(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start_date, self.end_date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn previous_day_is_yesterday_even_across_a_year() {
        let now = Utc.with_ymd_and_hms(2021, 1, 1, 0, 5, 0).unwrap();
        let w = Window::previous(Granularity::Day, now, Tz::UTC);
        assert_eq!(
            (w.start_date, w.end_date),
            (d("2020-12-31"), d("2020-12-31"))
        );
    }

    #[test]
    fn previous_month_handles_leap_february_and_january() {
        let now = Utc.with_ymd_and_hms(2020, 3, 15, 12, 0, 0).unwrap();
        let w = Window::previous(Granularity::Month, now, Tz::UTC);
        assert_eq!(
            (w.start_date, w.end_date),
            (d("2020-02-01"), d("2020-02-29"))
        );
        let now = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let w = Window::previous(Granularity::Month, now, Tz::UTC);
        assert_eq!(
            (w.start_date, w.end_date),
            (d("2019-12-01"), d("2019-12-31"))
        );
    }

    #[test]
    fn monthly_split_is_clipped_and_contiguous() {
        let ws = Window::monthly(d("2020-01-15"), d("2020-03-10")).unwrap();
        let got: Vec<_> = ws.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got,
            [
                "2020-01-15..2020-01-31",
                "2020-02-01..2020-02-29",
                "2020-03-01..2020-03-10"
            ]
        );
    }

    #[test]
    fn periods_are_days_or_clipped_months_and_lazy() {
        let days: Vec<_> = Window::periods(Granularity::Day, d("2020-02-28"), d("2020-03-01"))
            .map(|w| w.to_string())
            .collect();
        assert_eq!(
            days,
            [
                "2020-02-28..2020-02-28",
                "2020-02-29..2020-02-29",
                "2020-03-01..2020-03-01"
            ]
        );
        let months: Vec<_> = Window::periods(Granularity::Month, d("2019-12-01"), d("2020-01-31"))
            .map(|w| w.to_string())
            .collect();
        assert_eq!(months, ["2019-12-01..2019-12-31", "2020-01-01..2020-01-31"]);
        assert_eq!(
            Window::periods(Granularity::Day, d("2020-01-02"), d("2020-01-01")).count(),
            0
        );
        // The whole calendar is not walked to take the first three.
        let first = Window::periods(Granularity::Day, NaiveDate::MIN, NaiveDate::MAX).take(3);
        assert_eq!(first.count(), 3);
        let last = Window::periods(
            Granularity::Month,
            NaiveDate::from_ymd_opt(262142, 12, 15).unwrap(),
            NaiveDate::MAX,
        );
        assert_eq!(
            last.count(),
            1,
            "the last month of the calendar ends the walk"
        );
    }

    #[test]
    fn reversed_window_is_rejected_with_both_dates() {
        let e = Window::new(d("2020-02-01"), d("2020-01-01")).unwrap_err();
        assert_eq!(e.error_type(), "InvalidInput");
        assert!(e.to_string().contains("2020-01-01") && e.to_string().contains("2020-02-01"));
    }

    #[test]
    fn previous_period_follows_the_schedules_time_zone() {
        // 2021-03-01 01:30 in Tokyo is still 2021-02-28 in UTC.
        let now = Utc.with_ymd_and_hms(2021, 2, 28, 16, 30, 0).unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let day = Window::previous(Granularity::Day, now, tokyo);
        assert_eq!(
            (day.start_date, day.end_date),
            (d("2021-02-28"), d("2021-02-28"))
        );
        let month = Window::previous(Granularity::Month, now, tokyo);
        assert_eq!(
            (month.start_date, month.end_date),
            (d("2021-02-01"), d("2021-02-28"))
        );
        // The same instant on UTC's calendar: the day before, and January.
        let utc_day = Window::previous(Granularity::Day, now, Tz::UTC);
        assert_eq!(utc_day.start_date, d("2021-02-27"));
        let utc_month = Window::previous(Granularity::Month, now, Tz::UTC);
        assert_eq!(utc_month.end_date, d("2021-01-31"));
        // Daylight saving: 2021-03-28 00:30 UTC is 01:30 CET... then 03:30 CEST on the same day.
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let spring = Utc.with_ymd_and_hms(2021, 3, 27, 23, 30, 0).unwrap();
        assert_eq!(local_date(spring, paris), d("2021-03-28"));
    }

    #[test]
    fn granularity_parses_and_rejects_unknown() {
        assert_eq!("Month".parse::<Granularity>().unwrap(), Granularity::Month);
        assert_eq!("daily".parse::<Granularity>().unwrap(), Granularity::Day);
        assert!("weekly"
            .parse::<Granularity>()
            .unwrap_err()
            .to_string()
            .contains("weekly"));
    }
}
