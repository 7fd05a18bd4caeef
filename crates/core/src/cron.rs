//! Cron schedules in an IANA time zone.
//!
//! An expression has 5 fields (minute precision) or 6 (a leading seconds field), or is a nickname
//! such as `@hourly`; it is evaluated in its zone's wall-clock time by `croner` over `chrono-tz`.
//! Daylight saving follows classic cron: a fixed time that spring-forward skips fires once, at
//! the first valid time after the gap; a fixed time in the repeated fall-back hour fires once
//! (its first pass); interval patterns (`*/15`, `*`) fire at each matching real instant.

use std::str::FromStr;

use chrono::TimeZone;
use croner::parser::{CronParser, Seconds, Year};

use crate::Timestamp;

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not a cron expression this server reads.
    #[error("invalid cron expression `{expression}`: {reason}")]
    Invalid {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not an IANA time-zone name.
    #[error("unknown time zone `{0}` (use an IANA name such as `Europe/Berlin` or `UTC`)")]
    UnknownTimeZone(String),
    /// The expression never matches a real time.
    #[error("cron expression `{0}` never fires")]
    NeverFires(String),
}

/// A parsed cron expression and the zone it is read in.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

/// Forward steps taken one by one to find the latest missed occurrence before jumping.
const CATCH_UP_STEPS: usize = 1_000;

impl CronSchedule {
    /// Parses `expression` for the IANA `timezone` (`None`: UTC).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<CronSchedule, CronError> {
        let zone = match timezone.map(str::trim).filter(|z| !z.is_empty()) {
            None => chrono_tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| CronError::UnknownTimeZone(name.to_owned()))?,
        };
        let invalid = |reason: String| CronError::Invalid { expression: expression.to_owned(), reason };
        let trimmed = expression.trim();
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(invalid(format!(
                "it has {fields} fields; a schedule has 5 (minute precision) or 6 (seconds first)"
            )));
        }
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser.parse(trimmed).map_err(|e| invalid(e.to_string()))?;
        let schedule = CronSchedule { cron, zone };
        if schedule.next_after(Timestamp(0)).is_none() {
            return Err(CronError::NeverFires(expression.to_owned()));
        }
        Ok(schedule)
    }

    /// The zone's IANA name.
    pub fn timezone(&self) -> &'static str {
        self.zone.name()
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = self.zone.timestamp_millis_opt(after.0).single()?;
        self.cron.find_next_occurrence(&start, false).ok().map(|at| Timestamp(at.timestamp_millis()))
    }

    /// The latest occurrence at or before `now`, searching forward from `due` (an occurrence
    /// that is due): what a schedule that missed several occurrences fires once.
    pub fn latest_due(&self, due: Timestamp, now: Timestamp) -> Timestamp {
        let mut latest = due;
        for _ in 0..CATCH_UP_STEPS {
            match self.next_after(latest) {
                Some(next) if next <= now => latest = next,
                _ => return latest,
            }
        }
        // Far behind: start again from the last occurrence before an hour ago.
        let mut from = Timestamp(now.0 - 3_600_000).max(latest);
        let zoned = self.zone.timestamp_millis_opt(from.0).single();
        if let Some(previous) = zoned.and_then(|z| self.cron.find_previous_occurrence(&z, true).ok()) {
            from = Timestamp(previous.timestamp_millis()).max(latest);
        }
        while let Some(next) = self.next_after(from).filter(|next| *next <= now) {
            from = next;
        }
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: &str, local: &str) -> Timestamp {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
        Timestamp(tz.from_local_datetime(&naive).earliest().unwrap().timestamp_millis())
    }

    fn utc(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    /// The occurrences in `[from, until)`.
    fn fires(schedule: &CronSchedule, from: Timestamp, until: Timestamp) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = Timestamp(from.0 - 1);
        while let Some(next) = schedule.next_after(cursor).filter(|n| *n < until) {
            out.push(next.to_rfc3339());
            cursor = next;
        }
        out
    }

    #[test]
    fn five_and_six_fields_and_nicknames() {
        let five = CronSchedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(five.next_after(utc("2026-12-03T10:07:00Z")), Some(utc("2026-12-03T10:15:00Z")));
        assert_eq!(five.timezone(), "UTC");
        let six = CronSchedule::parse("*/2 * * * * *", Some("UTC")).unwrap();
        assert_eq!(six.next_after(utc("2026-12-03T10:00:01Z")), Some(utc("2026-12-03T10:00:02Z")));
        let hourly = CronSchedule::parse("@hourly", None).unwrap();
        assert_eq!(hourly.next_after(utc("2026-12-03T10:00:00Z")), Some(utc("2026-12-03T11:00:00Z")));
    }

    #[test]
    fn a_zone_moves_the_wall_clock() {
        let berlin = CronSchedule::parse("0 9 * * 1", Some("Europe/Berlin")).unwrap();
        // Monday 2026-12-07 09:00 in Berlin is 08:00 UTC (CET).
        assert_eq!(berlin.next_after(utc("2026-12-03T00:00:00Z")), Some(utc("2026-12-07T08:00:00Z")));
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        for bad in ["", "* * * *", "0 0 0 * * * 2030", "61 * * * *", "* * 32 * *", "nonsense", "*/0 * * * *"] {
            let err = CronSchedule::parse(bad, None).unwrap_err();
            assert!(matches!(err, CronError::Invalid { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        let err = CronSchedule::parse("0 9 * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(err, CronError::UnknownTimeZone("Mars/Olympus".into()));
        assert!(matches!(CronSchedule::parse("0 0 30 2 *", None), Err(CronError::NeverFires(_))));
    }

    #[test]
    fn new_york_spring_forward_fires_a_skipped_time_once_at_the_shifted_time() {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
        let s = CronSchedule::parse("30 2 * * *", Some("America/New_York")).unwrap();
        let got =
            fires(&s, at("America/New_York", "2026-03-07 00:00:00"), at("America/New_York", "2026-03-10 00:00:00"));
        assert_eq!(got, ["2026-03-07T07:30:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"]);
    }

    #[test]
    fn new_york_fall_back_fires_a_fixed_time_once_and_an_interval_each_pass() {
        // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
        let s = CronSchedule::parse("30 1 * * *", Some("America/New_York")).unwrap();
        let got =
            fires(&s, at("America/New_York", "2026-10-31 12:00:00"), at("America/New_York", "2026-11-02 12:00:00"));
        assert_eq!(got, ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"]);
        let every_half_hour = CronSchedule::parse("*/30 1 * * *", Some("America/New_York")).unwrap();
        let got = fires(&every_half_hour, utc("2026-11-01T04:00:00Z"), utc("2026-11-01T08:00:00Z"));
        assert_eq!(
            got,
            [
                "2026-11-01T05:00:00.000Z",
                "2026-11-01T05:30:00.000Z",
                "2026-11-01T06:00:00.000Z",
                "2026-11-01T06:30:00.000Z"
            ]
        );
    }

    #[test]
    fn cairo_transitions_move_midnight() {
        // 2026-04-24 (last Friday of April) 00:00 EET jumps to 01:00 EEST: that midnight does
        // not exist; the daily midnight run fires once, at 01:00 local.
        let midnight = CronSchedule::parse("0 0 * * *", Some("Africa/Cairo")).unwrap();
        let got = fires(&midnight, utc("2026-04-22T23:00:00Z"), utc("2026-04-25T23:00:00Z"));
        // 24th: 01:00 EEST; 25th and 26th: 00:00 EEST.
        assert_eq!(got, ["2026-04-23T22:00:00.000Z", "2026-04-24T21:00:00.000Z", "2026-04-25T21:00:00.000Z"]);
        let got = fires(&midnight, utc("2026-04-23T12:00:00Z"), utc("2026-04-24T12:00:00Z"));
        assert_eq!(got, ["2026-04-23T22:00:00.000Z"], "the skipped midnight runs at 01:00 EEST = 22:00 UTC");
        // 2026-10-29 (last Thursday of October) 24:00 EEST falls back to 23:00 EET: 23:30 on the
        // 29th happens twice and fires once.
        let late = CronSchedule::parse("30 23 * * *", Some("Africa/Cairo")).unwrap();
        let got = fires(&late, utc("2026-10-28T12:00:00Z"), utc("2026-10-31T12:00:00Z"));
        assert_eq!(got, ["2026-10-28T20:30:00.000Z", "2026-10-29T20:30:00.000Z", "2026-10-30T21:30:00.000Z"]);
    }

    #[test]
    fn after_downtime_the_latest_missed_occurrence_is_found() {
        let s = CronSchedule::parse("*/5 * * * *", None).unwrap();
        let due = utc("2026-12-03T10:00:00Z");
        assert_eq!(s.latest_due(due, utc("2026-12-03T10:17:00Z")), utc("2026-12-03T10:15:00Z"));
        assert_eq!(s.latest_due(due, due), due);
        let every_second = CronSchedule::parse("* * * * * *", None).unwrap();
        let far = utc("2026-12-10T10:00:00.500Z");
        assert_eq!(every_second.latest_due(due, far), utc("2026-12-10T10:00:00Z"));
    }
}
