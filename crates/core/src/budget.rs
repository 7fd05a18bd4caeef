//! Budget caps: how much a scope, an agent or a user may spend (and how many turns they may
//! start) per hour, day, week or month, in UTC windows.
//!
//! Window keys: hour `2026-12-03T18`, day `2026-12-03`, week `2026-W49` (ISO 8601 week, Monday to
//! Sunday), month `2026-12`. A cap on `user` with target `*` gives every user a window of their
//! own; the others have one window for everyone they apply to.

use chrono::{Datelike as _, Timelike as _};
use serde::{Deserialize, Serialize};

use crate::money::MicroCents;
use crate::scope::Scope;
use crate::time::Timestamp;

/// Default alert thresholds, in percent of the limit.
pub const DEFAULT_ALERT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapScope {
    /// Everyone in the scope (org, project, environment).
    Scope,
    /// One agent (`target_id` = agent id).
    Agent,
    /// One user (`target_id` = user id), or each user on their own (`target_id` = `*`).
    User,
}

impl CapScope {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            CapScope::Scope => "scope",
            CapScope::Agent => "agent",
            CapScope::User => "user",
        }
    }

    /// Parses the stored and wire form.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "scope" => CapScope::Scope,
            "agent" => CapScope::Agent,
            "user" => CapScope::User,
            _ => return None,
        })
    }
}

/// The length of a cap's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// A UTC clock hour.
    Hour,
    /// A UTC calendar day.
    Day,
    /// An ISO week (Monday 00:00 UTC to Sunday 24:00).
    Week,
    /// A UTC calendar month.
    Month,
}

impl Period {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// Parses the stored and wire form.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "hour" => Period::Hour,
            "day" => Period::Day,
            "week" => Period::Week,
            "month" => Period::Month,
            _ => return None,
        })
    }

    /// The key of the window `at` falls in.
    pub fn window_key(self, at: Timestamp) -> String {
        let Some(t) = chrono::DateTime::from_timestamp_millis(at.0) else { return String::from("invalid") };
        match self {
            Period::Hour => format!("{:04}-{:02}-{:02}T{:02}", t.year(), t.month(), t.day(), t.hour()),
            Period::Day => format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
            Period::Week => {
                let week = t.iso_week();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Month => format!("{:04}-{:02}", t.year(), t.month()),
        }
    }

    /// When the window `at` falls in starts, and when the next one does.
    pub fn window_bounds(self, at: Timestamp) -> (Timestamp, Timestamp) {
        let Some(t) = chrono::DateTime::from_timestamp_millis(at.0) else { return (at, at) };
        let day = t.date_naive();
        let (start, end) = match self {
            Period::Hour => {
                let start = day.and_hms_opt(t.hour(), 0, 0).unwrap_or_default();
                (start, start + chrono::TimeDelta::hours(1))
            }
            Period::Day => (day.into(), (day + chrono::Days::new(1)).into()),
            Period::Week => {
                let monday = day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()));
                (monday.into(), (monday + chrono::Days::new(7)).into())
            }
            Period::Month => {
                let first = day.with_day(1).unwrap_or(day);
                (first.into(), (first + chrono::Months::new(1)).into())
            }
        };
        (Timestamp(start.and_utc().timestamp_millis()), Timestamp(end.and_utc().timestamp_millis()))
    }
}

/// A budget cap, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCap {
    /// `cap_…`
    pub id: String,
    /// The tenancy it belongs to.
    pub scope: Scope,
    /// What it counts.
    pub scope_type: CapScope,
    /// `""` for a scope cap, the agent id, the user id, or `*` (each user).
    pub target_id: String,
    /// Window length.
    pub period: Period,
    /// Spend allowed per window.
    pub limit: MicroCents,
    /// Turns allowed per window, if limited.
    pub turns_limit: Option<i64>,
    /// Percent of the limit at which alerts fire, once per window.
    pub alert_thresholds: Vec<u32>,
    /// Where alerts are POSTed.
    pub alert_webhook_url: Option<String>,
    /// Who should hear about alerts (stored; mail is not sent by Agentry).
    pub alert_emails: Vec<String>,
    /// A disabled cap counts nothing and blocks nothing.
    pub enabled: bool,
    /// Until when an operator lifted the block.
    pub override_until: Option<Timestamp>,
    /// Who lifted it.
    pub override_by: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl BudgetCap {
    /// The subject whose window a turn of `agent_id` for `user_id` counts in, or `None` when the
    /// cap does not apply to it: `""` for a shared window, the user id for a per-user one.
    pub fn subject_for(&self, agent_id: &str, user_id: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        match self.scope_type {
            CapScope::Scope => Some(String::new()),
            CapScope::Agent => (self.target_id == agent_id).then(String::new),
            CapScope::User if self.target_id == "*" => Some(user_id.to_owned()),
            CapScope::User => (self.target_id == user_id).then(String::new),
        }
    }

    /// Whether an operator's override lifts the block at `now`.
    pub fn override_active(&self, now: Timestamp) -> bool {
        self.override_until.is_some_and(|until| until > now)
    }
}

/// Why a cap definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget cap field `{field}`: {problem}")]
pub struct CapError {
    /// The offending field (wire name).
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

/// Checks a cap's fields (wire names in the errors).
pub fn validate_cap(cap: &BudgetCap) -> Result<(), CapError> {
    let invalid = |field, problem: &str| Err(CapError { field, problem: problem.to_owned() });
    match cap.scope_type {
        CapScope::Scope if !cap.target_id.is_empty() => return invalid("targetId", "must be empty for a scope cap"),
        CapScope::Agent | CapScope::User if cap.target_id.trim().is_empty() => {
            return invalid("targetId", "is required for an agent or user cap (a user cap may use \"*\")");
        }
        CapScope::Agent if cap.target_id == "*" => return invalid("targetId", "`*` is only for user caps"),
        _ => {}
    }
    if cap.limit.0 < 0 {
        return invalid("limitCents", "must not be negative");
    }
    if cap.turns_limit.is_some_and(|t| t < 0) {
        return invalid("turnsLimit", "must not be negative");
    }
    if cap.alert_thresholds.iter().any(|t| *t == 0 || *t > 1000) {
        return invalid("alertThresholds", "each must be a percent from 1 to 1000");
    }
    if let Some(url) = &cap.alert_webhook_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return invalid("alertWebhookUrl", "must be an http:// or https:// URL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp(chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis())
    }

    #[test]
    fn window_keys_are_utc_hours_days_iso_weeks_and_months() {
        let t = at("2026-12-31T23:59:59.999Z");
        assert_eq!(Period::Hour.window_key(t), "2026-12-31T23");
        assert_eq!(Period::Day.window_key(t), "2026-12-31");
        assert_eq!(Period::Week.window_key(t), "2026-W53");
        assert_eq!(Period::Month.window_key(t), "2026-12");
        let next = at("2027-01-01T00:00:00.000Z");
        assert_eq!(Period::Day.window_key(next), "2027-01-01");
        assert_eq!(Period::Week.window_key(next), "2026-W53", "Friday 1 January 2027 is in ISO week 53 of 2026");
        assert_eq!(Period::Week.window_key(at("2027-01-04T00:00:00Z")), "2027-W01");
        assert_eq!(Period::Hour.window_key(at("2026-12-03T18:30:00+02:00")), "2026-12-03T16", "UTC");
    }

    #[test]
    fn window_bounds_enclose_the_window_of_their_key() {
        let t = at("2027-01-01T13:45:10.5Z");
        let bounds = |p: Period| p.window_bounds(t);
        assert_eq!(bounds(Period::Hour), (at("2027-01-01T13:00:00Z"), at("2027-01-01T14:00:00Z")));
        assert_eq!(bounds(Period::Day), (at("2027-01-01T00:00:00Z"), at("2027-01-02T00:00:00Z")));
        assert_eq!(bounds(Period::Week), (at("2026-12-28T00:00:00Z"), at("2027-01-04T00:00:00Z")), "Monday to Monday");
        assert_eq!(bounds(Period::Month), (at("2027-01-01T00:00:00Z"), at("2027-02-01T00:00:00Z")));
        for period in [Period::Hour, Period::Day, Period::Week, Period::Month] {
            let (start, end) = period.window_bounds(t);
            assert_eq!(period.window_key(start), period.window_key(t));
            assert_ne!(period.window_key(end), period.window_key(t));
            assert_eq!(period.window_key(Timestamp(end.0 - 1)), period.window_key(t));
        }
    }

    fn cap(scope_type: CapScope, target: &str) -> BudgetCap {
        BudgetCap {
            id: "cap_1".into(),
            scope: Scope::default_scope(),
            scope_type,
            target_id: target.into(),
            period: Period::Day,
            limit: MicroCents(100),
            turns_limit: None,
            alert_thresholds: DEFAULT_ALERT_THRESHOLDS.to_vec(),
            alert_webhook_url: None,
            alert_emails: Vec::new(),
            enabled: true,
            override_until: None,
            override_by: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn caps_apply_to_their_subjects() {
        assert_eq!(cap(CapScope::Scope, "").subject_for("a", "u"), Some(String::new()));
        assert_eq!(cap(CapScope::Agent, "a").subject_for("a", "u"), Some(String::new()));
        assert_eq!(cap(CapScope::Agent, "a").subject_for("b", "u"), None);
        assert_eq!(cap(CapScope::User, "u").subject_for("a", "u"), Some(String::new()));
        assert_eq!(cap(CapScope::User, "u").subject_for("a", "v"), None);
        assert_eq!(cap(CapScope::User, "*").subject_for("a", "v"), Some("v".into()));
        assert_eq!(BudgetCap { enabled: false, ..cap(CapScope::Scope, "") }.subject_for("a", "u"), None);
    }

    #[test]
    fn bad_caps_name_the_field() {
        assert_eq!(validate_cap(&cap(CapScope::Scope, "x")).unwrap_err().field, "targetId");
        assert_eq!(validate_cap(&cap(CapScope::Agent, "")).unwrap_err().field, "targetId");
        assert_eq!(validate_cap(&cap(CapScope::Agent, "*")).unwrap_err().field, "targetId");
        let negative = BudgetCap { limit: MicroCents(-1), ..cap(CapScope::Scope, "") };
        assert_eq!(validate_cap(&negative).unwrap_err().field, "limitCents");
        let thresholds = BudgetCap { alert_thresholds: vec![0], ..cap(CapScope::Scope, "") };
        assert_eq!(validate_cap(&thresholds).unwrap_err().field, "alertThresholds");
        let url = BudgetCap { alert_webhook_url: Some("ftp://x".into()), ..cap(CapScope::Scope, "") };
        assert_eq!(validate_cap(&url).unwrap_err().field, "alertWebhookUrl");
        assert!(validate_cap(&cap(CapScope::User, "*")).is_ok());
    }
}
