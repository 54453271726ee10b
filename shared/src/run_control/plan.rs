//! Catch-up: which windows a scheduled run processes, and how a finished run moves the frontier
//! (the last successful window, kept in the lake). Pure rules here; reading and writing the
//! frontier object is the caller's.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::window::{Granularity, Tz, Window};

/// The last successful window: scheduled runs plan every period after its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    #[serde(flatten)]
    pub window: Window,
    /// The execution that set it (absent in a hand-written frontier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
}

impl Frontier {
    /// Reads the frontier object kept at `uri` (for messages): a file that is not one is an
    /// error naming it and saying how to repair it, never a silent restart of the catch-up.
    pub fn parse(raw: &[u8], uri: &str) -> Result<Frontier> {
        let fix = "delete it (the next scheduled run then processes only its own period) or correct it to {\"start_date\": \"YYYY-MM-DD\", \"end_date\": \"YYYY-MM-DD\"}";
        let f: Frontier = serde_json::from_slice(raw).map_err(|e| {
            Error::Configuration(format!(
                "the catch-up frontier {uri} is not readable ({e}): {fix}"
            ))
        })?;
        if f.window.end_date < f.window.start_date {
            return Err(Error::Configuration(format!(
                "the catch-up frontier {uri} ends ({}) before it starts ({}): {fix}",
                f.window.end_date, f.window.start_date
            )));
        }
        Ok(f)
    }
}

/// What a scheduled run processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub windows: Vec<Window>,
    /// More periods were missed than one run plans: the next run goes on from here.
    pub capped: bool,
}

/// The windows of a scheduled run whose own period is `target` (the previous period of its
/// scheduled time), given the last successful window:
/// - none: `[target]` (a first deployment does not backfill history);
/// - it reaches the target's end or beyond: `[target]` (a repeated delivery runs its own window
///   again; record identity makes that harmless);
/// - else every period after the frontier's end through the target, oldest first (the first
///   clipped to start the day after the frontier, when a manual run or another granularity left
///   it mid-period), at most `max` of them: the oldest, `capped`.
pub fn plan(
    target: Window,
    frontier: Option<&Window>,
    granularity: Granularity,
    max: usize,
) -> Plan {
    let next = frontier
        .filter(|f| f.end_date < target.end_date)
        .and_then(|f| f.end_date.succ_opt());
    let Some(from) = next else {
        return Plan {
            windows: vec![target],
            capped: false,
        };
    };
    let mut windows: Vec<Window> = Window::periods(granularity, from, target.end_date)
        .take(max.saturating_add(1))
        .collect();
    let capped = windows.len() > max;
    windows.truncate(max);
    Plan { windows, capped }
}

/// The dates a window of an execution covered: its own, else the previous period of its
/// `scheduled_time` or, without one, of `fallback` (when it started), as the extracts take it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
}

impl WindowRequest {
    pub fn resolve(
        &self,
        what: &str,
        granularity: Granularity,
        tz: Tz,
        fallback: DateTime<Utc>,
    ) -> Result<Window> {
        let date = |field: &str, raw: &Option<String>| -> Result<Option<NaiveDate>> {
            crate::extract::date_field(what, field, raw.as_deref())
        };
        match (
            date("start_date", &self.start_date)?,
            date("end_date", &self.end_date)?,
        ) {
            (Some(s), Some(e)) => Window::new(s, e),
            (None, None) => {
                let at = crate::extract::time_field(
                    what,
                    "scheduled_time",
                    self.scheduled_time.as_deref(),
                )?;
                Ok(Window::previous(granularity, at.unwrap_or(fallback), tz))
            }
            _ => Err(Error::InvalidInput(format!(
                "{what}: give both start_date and end_date, or neither"
            ))),
        }
    }
}

/// Why the frontier moved or stayed, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advance {
    /// The frontier after the run (unchanged when it did not move).
    pub after: Option<Window>,
    pub advanced: bool,
    pub reason: String,
}

/// How a finished run moves the frontier `current`, given the windows it processed:
/// - a failed run never moves it;
/// - a scheduled run sets it to its latest window when that ends later (also the first time);
/// - a manual run moves it only when its windows, merged, are contiguous with it (start at the
///   latest the day after its end) and reach beyond it: to the latest window of that stretch.
///   It never sets a first frontier: a manual backfill of old data must not make the schedule
///   catch up from there.
pub fn advance(
    current: Option<&Window>,
    succeeded: bool,
    scheduled: bool,
    windows: &[Window],
) -> Advance {
    let stay = |reason: String| Advance {
        after: current.copied(),
        advanced: false,
        reason,
    };
    if !succeeded {
        return stay("the run did not succeed: the frontier never moves on a failure".into());
    }
    let Some(latest) = windows.iter().max_by_key(|w| (w.end_date, w.start_date)) else {
        return stay("the run processed no window".into());
    };
    let moved = |to: Window, reason: String| Advance {
        after: Some(to),
        advanced: true,
        reason,
    };
    if scheduled {
        return match current {
            Some(f) if f.end_date >= latest.end_date => stay(format!(
                "the frontier ({f}) already reaches this run's latest window ({latest})"
            )),
            Some(f) => moved(*latest, format!("scheduled run: {f} -> {latest}")),
            None => moved(*latest, format!("scheduled run: first frontier {latest}")),
        };
    }
    let Some(f) = current else {
        return stay("a manual run does not set a first frontier".into());
    };
    // Merge the run's windows into stretches; the one touching the day after the frontier counts.
    let mut sorted: Vec<Window> = windows.to_vec();
    sorted.sort_by_key(|w| (w.start_date, w.end_date));
    let next_day = f.end_date.succ_opt().unwrap_or(f.end_date);
    let mut reach: Option<Window> = None;
    for w in sorted {
        match reach {
            None if w.start_date <= next_day && w.end_date > f.end_date => reach = Some(w),
            Some(r)
                if w.start_date <= r.end_date.succ_opt().unwrap_or(r.end_date)
                    && w.end_date > r.end_date =>
            {
                reach = Some(w)
            }
            _ => {}
        }
    }
    match reach {
        Some(to) => moved(
            to,
            format!("manual run contiguous with the frontier: {f} -> {to}"),
        ),
        None => stay(format!(
            "manual run not contiguous with the frontier ({f}) or not beyond it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn w(s: &str, e: &str) -> Window {
        Window::new(d(s), d(e)).unwrap()
    }

    fn day(s: &str) -> Window {
        w(s, s)
    }

    fn shown(p: &Plan) -> Vec<String> {
        p.windows.iter().map(|w| w.to_string()).collect()
    }

    /// A daily schedule firing at 02:00 UTC on `date`: its own period is the day before.
    fn daily_target(date: &str) -> Window {
        let at = Utc.from_utc_datetime(&d(date).and_hms_opt(2, 0, 0).unwrap());
        Window::previous(Granularity::Day, at, Tz::UTC)
    }

    #[test]
    fn without_a_frontier_a_run_takes_only_its_own_period() {
        let p = plan(daily_target("2021-03-10"), None, Granularity::Day, 400);
        assert_eq!(shown(&p), ["2021-03-09..2021-03-09"]);
        assert!(!p.capped);
    }

    #[test]
    fn behind_by_one_period_takes_just_its_own() {
        let f = day("2021-03-08");
        let p = plan(daily_target("2021-03-10"), Some(&f), Granularity::Day, 400);
        assert_eq!(shown(&p), ["2021-03-09..2021-03-09"]);
    }

    #[test]
    fn forty_days_behind_catches_up_every_day_oldest_first() {
        let f = day("2021-01-29");
        let p = plan(daily_target("2021-03-11"), Some(&f), Granularity::Day, 400);
        assert_eq!(p.windows.len(), 40);
        assert_eq!(p.windows[0], day("2021-01-30"));
        assert_eq!(p.windows[39], day("2021-03-10"));
        assert!(p
            .windows
            .windows(2)
            .all(|pair| pair[0].end_date.succ_opt() == Some(pair[1].start_date)));
        assert!(!p.capped);
    }

    #[test]
    fn a_long_outage_is_capped_to_the_oldest_and_the_next_run_goes_on() {
        let f = day("2015-01-01");
        let target = daily_target("2021-01-01");
        let p = plan(target, Some(&f), Granularity::Day, 400);
        assert_eq!(p.windows.len(), 400);
        assert!(p.capped);
        assert_eq!(p.windows[0], day("2015-01-02"));
        // After that run succeeds, the next one starts the day after: no hole.
        let last = *p.windows.last().unwrap();
        let next = plan(target, Some(&last), Granularity::Day, 400);
        assert_eq!(
            next.windows[0].start_date,
            last.end_date.succ_opt().unwrap()
        );
        // Exactly the cap is not capped.
        let f = day("2020-12-29");
        let p = plan(target, Some(&f), Granularity::Day, 2);
        assert_eq!((p.windows.len(), p.capped), (2, false));
    }

    #[test]
    fn monthly_catch_up_crosses_the_year_end() {
        let at = Utc.with_ymd_and_hms(2021, 2, 1, 6, 0, 0).unwrap();
        let target = Window::previous(Granularity::Month, at, Tz::UTC);
        assert_eq!(target, w("2021-01-01", "2021-01-31"));
        let f = w("2020-10-01", "2020-10-31");
        let p = plan(target, Some(&f), Granularity::Month, 400);
        assert_eq!(
            shown(&p),
            [
                "2020-11-01..2020-11-30",
                "2020-12-01..2020-12-31",
                "2021-01-01..2021-01-31"
            ]
        );
        // A frontier left mid-month (a manual run) resumes the day after it, not a month later.
        let f = w("2020-12-01", "2020-12-15");
        let p = plan(target, Some(&f), Granularity::Month, 400);
        assert_eq!(
            shown(&p),
            ["2020-12-16..2020-12-31", "2021-01-01..2021-01-31"]
        );
    }

    #[test]
    fn the_target_follows_the_schedules_time_zone() {
        // 01:30 in Tokyo on 2021-03-11 is 16:30 UTC on 2021-03-10: Tokyo's yesterday is the 10th.
        let at = Utc.with_ymd_and_hms(2021, 3, 10, 16, 30, 0).unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let f = day("2021-03-07");
        let p = plan(
            Window::previous(Granularity::Day, at, tokyo),
            Some(&f),
            Granularity::Day,
            400,
        );
        assert_eq!(
            shown(&p),
            [
                "2021-03-08..2021-03-08",
                "2021-03-09..2021-03-09",
                "2021-03-10..2021-03-10"
            ]
        );
        let utc = plan(
            Window::previous(Granularity::Day, at, Tz::UTC),
            Some(&f),
            Granularity::Day,
            400,
        );
        assert_eq!(utc.windows.last(), Some(&day("2021-03-09")));
    }

    #[test]
    fn a_frontier_at_or_ahead_of_the_target_runs_the_target_again() {
        let target = daily_target("2021-03-10");
        for f in [day("2021-03-09"), day("2021-04-01")] {
            let p = plan(target, Some(&f), Granularity::Day, 400);
            assert_eq!(shown(&p), ["2021-03-09..2021-03-09"], "frontier {f}");
        }
    }

    #[test]
    fn a_corrupt_frontier_names_its_key_and_the_fix() {
        let uri = "s3://lake/state/deftunes/last-successful-window.json";
        for raw in [
            &b"{not json"[..],
            br#"{"start_date": "2021-13-01", "end_date": "2021-01-31"}"#,
            br#"{"end_date": "2021-01-31"}"#,
            br#"{"start_date": "2021-02-01", "end_date": "2021-01-31"}"#,
        ] {
            let e = Frontier::parse(raw, uri).unwrap_err();
            assert_eq!(e.error_type(), "Configuration");
            assert!(!e.is_retryable());
            let msg = e.to_string();
            assert!(msg.contains(uri), "{msg}");
            assert!(
                msg.contains("delete it") && msg.contains("correct it"),
                "{msg}"
            );
        }
        // A hand-written one needs only the dates.
        let f = Frontier::parse(
            br#"{"start_date":"2021-01-01","end_date":"2021-01-31","note":"x"}"#,
            uri,
        )
        .unwrap();
        assert_eq!(
            (f.window, f.execution_arn),
            (w("2021-01-01", "2021-01-31"), None)
        );
    }

    #[test]
    fn a_scheduled_success_moves_the_frontier_to_its_latest_window() {
        let runs = [day("2021-03-08"), day("2021-03-09")];
        let a = advance(None, true, true, &runs);
        assert_eq!((a.after, a.advanced), (Some(day("2021-03-09")), true));
        let a = advance(Some(&day("2021-03-07")), true, true, &runs);
        assert_eq!(a.after, Some(day("2021-03-09")));
        // Never backwards: a repeated delivery of an older run.
        let a = advance(Some(&day("2021-03-20")), true, true, &runs);
        assert_eq!((a.after, a.advanced), (Some(day("2021-03-20")), false));
    }

    #[test]
    fn a_manual_run_contiguous_with_the_frontier_moves_it() {
        let f = day("2021-03-09");
        // Starting the day after, in any order, merged across adjacent windows.
        let runs = [day("2021-03-11"), day("2021-03-10"), day("2021-03-12")];
        let a = advance(Some(&f), true, false, &runs);
        assert_eq!((a.after, a.advanced), (Some(day("2021-03-12")), true));
        // Overlapping the frontier and reaching beyond it.
        let a = advance(Some(&f), true, false, &[w("2021-03-01", "2021-03-31")]);
        assert_eq!(a.after, Some(w("2021-03-01", "2021-03-31")));
        // Contiguous stretch, then a hole: only the stretch counts.
        let a = advance(
            Some(&f),
            true,
            false,
            &[day("2021-03-10"), day("2021-03-20")],
        );
        assert_eq!(a.after, Some(day("2021-03-10")));
    }

    #[test]
    fn a_manual_run_apart_from_the_frontier_or_without_one_leaves_it() {
        let f = day("2021-03-09");
        for runs in [
            vec![day("2021-03-11")],             // a hole on the 10th
            vec![w("2020-01-01", "2020-12-31")], // an old backfill
            vec![w("2021-03-01", "2021-03-09")], // inside it
        ] {
            let a = advance(Some(&f), true, false, &runs);
            assert_eq!((a.after, a.advanced), (Some(f), false), "{runs:?}");
        }
        // A manual backfill of 2020 on a fresh deployment does not start a catch-up from 2020.
        let a = advance(None, true, false, &[w("2020-01-01", "2020-12-31")]);
        assert_eq!((a.after, a.advanced), (None, false));
        assert!(a.reason.contains("first frontier"), "{}", a.reason);
    }

    #[test]
    fn a_failed_run_never_moves_the_frontier() {
        let f = day("2021-03-09");
        for scheduled in [true, false] {
            let a = advance(Some(&f), false, scheduled, &[day("2021-03-10")]);
            assert_eq!((a.after, a.advanced), (Some(f), false));
            let a = advance(None, false, scheduled, &[day("2021-03-10")]);
            assert_eq!(a.after, None);
        }
    }

    #[test]
    fn windows_without_dates_are_the_previous_period_of_their_schedule_or_start() {
        let started = Utc.with_ymd_and_hms(2021, 3, 10, 9, 0, 0).unwrap();
        let r = |v: serde_json::Value| -> WindowRequest { serde_json::from_value(v).unwrap() };
        let resolve =
            |req: WindowRequest| req.resolve("windows[0]", Granularity::Day, Tz::UTC, started);
        assert_eq!(
            resolve(r(serde_json::json!({}))).unwrap(),
            day("2021-03-09")
        );
        assert_eq!(
            resolve(r(
                serde_json::json!({"scheduled_time": "2021-03-01T02:00:00Z"})
            ))
            .unwrap(),
            day("2021-02-28")
        );
        assert_eq!(
            resolve(r(
                serde_json::json!({"start_date": "2021-01-01", "end_date": "2021-01-31"})
            ))
            .unwrap(),
            w("2021-01-01", "2021-01-31")
        );
        for (bad, needle) in [
            (serde_json::json!({"start_date": "2021-01-01"}), "both"),
            (
                serde_json::json!({"start_date": "01/01/2021", "end_date": "2021-01-31"}),
                "start_date",
            ),
            (
                serde_json::json!({"scheduled_time": "yesterday"}),
                "scheduled_time",
            ),
        ] {
            let e = resolve(r(bad)).unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput");
            assert!(
                e.to_string().contains(needle) && e.to_string().contains("windows[0]"),
                "{e}"
            );
        }
    }
}
