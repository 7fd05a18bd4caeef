//! Background tasks: what a task file declares, the statuses of its runs, retry backoff, and the
//! options a trigger carries.
//!
//! A task is `agent` (a turn of an agent; the message is a template over the payload) or `http`
//! (an endpoint called with the payload). Runs are named as trigger.dev names them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Scope;
use crate::cron::{CronError, CronSchedule};
use crate::tool::HttpMethod;

/// Attempts of a run unless its task says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Longest attempt unless its task says otherwise.
pub const DEFAULT_MAX_DURATION_SECS: u64 = 300;
/// Most payloads in one batch.
pub const MAX_BATCH: usize = 1_000;

/// A task as written in a task file (TOML) and stored per scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Id, unique in its scope (`[A-Za-z0-9_.-]`, at most 64 characters).
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `agent` or `http`.
    pub kind: TaskKind,
    /// (`agent`) The agent that runs the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// (`agent`) The message, a template over the payload: `Summarise {{payload.url}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// (`agent`) Which thread: `new` (default: one per run) or a template naming a key
    /// (`{{payload.customer}}`): one thread per key, reused by later runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// (`agent`) A fixed thread every run continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// (`http`) The endpoint; `{name}` takes the payload's field, percent-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// (`http`) Method, default POST; the payload's other fields are the JSON body (or the query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// (`http`) Extra headers; values may use `{{secrets.NAME}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Attempts before a run fails (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Waits between attempts.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Longest attempt, in seconds (default 300); time spent waiting for an approval is not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_secs: Option<u64>,
    /// Most runs of this task executing at once (per concurrency key, when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<u32>,
    /// A template over the payload whose value groups runs for `concurrency_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// Default time a run may wait to start before it expires, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// End users (session tokens) may trigger it and read their own runs.
    #[serde(default)]
    pub allow_users: bool,
    /// Schedules declared with the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleSpec>,
    /// Organization (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Project (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Environment (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// What a run of a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// A turn of an agent.
    Agent,
    /// A call to an HTTP endpoint.
    Http,
}

/// Exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Wait before the second attempt, in milliseconds.
    pub min_delay_ms: u64,
    /// Longest wait, in milliseconds.
    pub max_delay_ms: u64,
    /// Growth per attempt.
    pub factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { min_delay_ms: 1_000, max_delay_ms: 60_000, factor: 2.0 }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): `min × factor^(attempt-1)`, capped at
    /// `max`, of which a random half (`jitter` in `[0, 1)`) is taken away ("equal jitter").
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX).min(64);
        let full = (self.min_delay_ms as f64 * self.factor.powi(exponent)).min(self.max_delay_ms as f64);
        let half = full / 2.0;
        Duration::from_millis((half + half * jitter.clamp(0.0, 1.0)) as u64)
    }

    /// [`RetryPolicy::delay`] with a random jitter.
    pub fn jittered_delay(&self, attempt: u32) -> Duration {
        let mut bytes = [0u8; 4];
        crate::id::fill_random(&mut bytes);
        self.delay(attempt, f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0))
    }
}

/// A schedule declared in a task file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Cron expression, 5 or 6 fields.
    pub cron: String,
    /// IANA time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The payload of each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Names the schedule: applying the file again updates it rather than adding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplication_key: Option<String>,
    /// When the previous run is still going: `skip` (default) or `allow`.
    #[serde(default)]
    pub overlap: Overlap,
    /// After downtime: fire the latest missed occurrence once (`latest`, default) or none.
    #[serde(default)]
    pub catch_up: CatchUp,
}

/// What an occurrence does while the schedule's previous run is unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// No new run.
    #[default]
    Skip,
    /// A new run anyway.
    Allow,
}

/// What a schedule does with occurrences missed while no replica ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// The latest missed occurrence fires once.
    #[default]
    Latest,
    /// Missed occurrences are dropped.
    None,
}

impl Overlap {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }
}

impl CatchUp {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Latest => "latest",
            CatchUp::None => "none",
        }
    }
}

/// Why a task file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TaskSpecError {
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn problem(field: impl Into<String>, problem: impl Into<String>) -> TaskSpecError {
    TaskSpecError { field: field.into(), problem: problem.into() }
}

impl TaskSpec {
    /// The scope it declares (each part defaults to `default`).
    pub fn declared_scope(&self) -> Scope {
        let part = |v: &Option<String>| v.clone().unwrap_or_else(|| "default".to_owned());
        Scope::new(part(&self.organization), part(&self.project), part(&self.environment))
    }

    /// Attempts a run gets.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS)
    }

    /// Longest attempt.
    pub fn max_duration(&self) -> Duration {
        Duration::from_secs(self.max_duration_secs.unwrap_or(DEFAULT_MAX_DURATION_SECS))
    }

    /// Checks every field; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), TaskSpecError> {
        crate::agent::validate_agent_id(&self.id).map_err(|e| problem("id", e.to_string()))?;
        let present = |value: bool, field: &str, kind: &str| {
            if value { Err(problem(field, format!("is not used by `{kind}` tasks"))) } else { Ok(()) }
        };
        match self.kind {
            TaskKind::Agent => {
                let agent = self.agent.as_deref().ok_or_else(|| problem("agent", "an `agent` task names its agent"))?;
                crate::agent::validate_agent_id(agent).map_err(|e| problem("agent", e.to_string()))?;
                let message = self.message.as_deref().unwrap_or_default();
                if message.trim().is_empty() {
                    return Err(problem("message", "an `agent` task has a message template"));
                }
                check_template("message", message)?;
                if let Some(thread) = &self.thread {
                    check_template("thread", thread)?;
                }
                if self.thread.is_some() && self.thread_id.is_some() {
                    return Err(problem("thread_id", "give `thread` or `thread_id`, not both"));
                }
                present(self.url.is_some(), "url", "agent")?;
                present(self.method.is_some(), "method", "agent")?;
                present(!self.headers.is_empty(), "headers", "agent")?;
            }
            TaskKind::Http => {
                let url = self.url.as_deref().ok_or_else(|| problem("url", "an `http` task has a url"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(problem("url", format!("`{url}` must start with http:// or https://")));
                }
                present(self.agent.is_some(), "agent", "http")?;
                present(self.message.is_some(), "message", "http")?;
                present(self.thread.is_some() || self.thread_id.is_some(), "thread", "http")?;
            }
        }
        if self.max_attempts == Some(0) || self.max_attempts.is_some_and(|n| n > 100) {
            return Err(problem("max_attempts", "must be between 1 and 100"));
        }
        if self.max_duration_secs.is_some_and(|s| s == 0 || s > 7 * 86_400) {
            return Err(problem("max_duration_secs", "must be between 1 and 604800 (7 days)"));
        }
        if self.concurrency_limit == Some(0) {
            return Err(problem("concurrency_limit", "must be at least 1"));
        }
        if let Some(key) = &self.concurrency_key {
            check_template("concurrency_key", key)?;
            if self.concurrency_limit.is_none() {
                return Err(problem("concurrency_key", "needs a `concurrency_limit`"));
            }
        }
        let retry = &self.retry;
        if retry.min_delay_ms > retry.max_delay_ms || !(1.0..=10.0).contains(&retry.factor) {
            return Err(problem("retry", "needs min_delay_ms <= max_delay_ms and a factor between 1 and 10"));
        }
        for (i, schedule) in self.schedules.iter().enumerate() {
            CronSchedule::parse(&schedule.cron, schedule.timezone.as_deref())
                .map_err(|e| problem(format!("schedules[{i}]"), e.to_string()))?;
        }
        Ok(())
    }
}

/// Checks that `{{` and `}}` pair up in a template (what they contain is checked when it renders).
fn check_template(field: &str, template: &str) -> Result<(), TaskSpecError> {
    if template.matches("{{").count() != template.matches("}}").count() {
        return Err(problem(field, format!("`{template}` has unbalanced `{{{{` and `}}}}`")));
    }
    Ok(())
}

/// The status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Waiting for a worker (or for its next attempt's time).
    Queued,
    /// Triggered with a `delay` that has not passed.
    Delayed,
    /// An attempt is running.
    Executing,
    /// Its agent turn waits for an approval (or a budget).
    Waiting,
    /// Succeeded.
    Completed,
    /// Its last attempt failed.
    Failed,
    /// Someone cancelled it.
    Canceled,
    /// Its last attempt's replica stopped renewing its lease.
    Crashed,
    /// An attempt ran past `max_duration_secs`.
    TimedOut,
    /// Nobody started it within its `ttl`.
    Expired,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 10] = [
        RunStatus::Queued,
        RunStatus::Delayed,
        RunStatus::Executing,
        RunStatus::Waiting,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Canceled,
        RunStatus::Crashed,
        RunStatus::TimedOut,
        RunStatus::Expired,
    ];

    /// The wire and stored name (`QUEUED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Delayed => "DELAYED",
            RunStatus::Executing => "EXECUTING",
            RunStatus::Waiting => "WAITING",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Failed => "FAILED",
            RunStatus::Canceled => "CANCELED",
            RunStatus::Crashed => "CRASHED",
            RunStatus::TimedOut => "TIMED_OUT",
            RunStatus::Expired => "EXPIRED",
        }
    }

    /// Reads a stored or wire name (any case; `CANCELLED` too).
    pub fn parse(text: &str) -> Option<RunStatus> {
        let upper = text.trim().to_ascii_uppercase();
        let upper = if upper == "CANCELLED" { "CANCELED".to_owned() } else { upper };
        RunStatus::ALL.into_iter().find(|s| s.as_str() == upper)
    }

    /// True once nothing more happens to the run.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Delayed | RunStatus::Executing | RunStatus::Waiting)
    }
}

/// Reads a duration as clients write it: `90` (seconds), `"30s"`, `"1h30m"`, `"2d"`, `"500ms"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return None,
        };
        total = total.checked_add(Duration::from_millis(number.checked_mul(millis)?))?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// Why a schedule could not be made from a cron error (kept for the callers' `?`).
impl From<CronError> for TaskSpecError {
    fn from(err: CronError) -> Self {
        problem("cron", err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TaskSpec, String> {
        let spec: TaskSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn the_smallest_agent_task_parses_with_defaults() {
        let spec = parse(
            "id = \"summarise\"\nkind = \"agent\"\nagent = \"support\"\nmessage = \"Summarise {{payload.url}}\"\n",
        )
        .unwrap();
        assert_eq!(
            (spec.kind, spec.max_attempts(), spec.max_duration()),
            (TaskKind::Agent, 3, Duration::from_secs(300))
        );
        assert_eq!(spec.declared_scope(), Scope::new("default", "default", "default"));
    }

    #[test]
    fn bad_task_files_name_the_field() {
        let cases = [
            ("id = \"x\"\nkind = \"agent\"\nmessage = \"m\"", "agent"),
            ("id = \"x\"\nkind = \"agent\"\nagent = \"a\"", "message"),
            ("id = \"x\"\nkind = \"http\"", "url"),
            ("id = \"x\"\nkind = \"http\"\nurl = \"ftp://h\"", "url"),
            ("id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\nagent = \"a\"", "agent"),
            ("id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\nmax_attempts = 0", "max_attempts"),
            ("id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\nconcurrency_key = \"{{payload.k}}\"", "concurrency_key"),
            ("id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\n[[schedules]]\ncron = \"* * *\"", "schedules[0]"),
            (
                "id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\n[[schedules]]\ncron = \"0 9 * * *\"\ntimezone = \"Nowhere/City\"",
                "unknown time zone",
            ),
            ("id = \"bad id\"\nkind = \"http\"\nurl = \"http://h\"", "id"),
        ];
        for (text, field) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(field), "{text:?} → {err}");
        }
        assert!(parse("id = \"x\"\nkind = \"cron\"").unwrap_err().contains("unknown variant"));
        assert!(
            parse("id = \"x\"\nkind = \"http\"\nurl = \"http://h\"\nhandler = \"js\"").unwrap_err().contains("handler")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let retry = RetryPolicy { min_delay_ms: 1_000, max_delay_ms: 5_000, factor: 2.0 };
        assert_eq!(retry.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(retry.delay(1, 1.0), Duration::from_millis(1_000));
        assert_eq!(retry.delay(2, 0.999_999), Duration::from_millis(1_999));
        assert_eq!(retry.delay(10, 1.0), Duration::from_millis(5_000));
        assert_eq!(retry.delay(u32::MAX, 0.5), Duration::from_millis(3_750));
    }

    #[test]
    fn statuses_round_trip_and_durations_read() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(&status.as_str().to_lowercase()), Some(status));
        }
        assert_eq!(RunStatus::parse("cancelled"), Some(RunStatus::Canceled));
        assert!(RunStatus::Expired.is_final() && !RunStatus::Waiting.is_final());
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "1x", "h", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
