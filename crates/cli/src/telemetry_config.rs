//! `[telemetry]`: whether spans are stored and for how long, whether prompts and answers go on
//! them, and where they are exported (OTLP/HTTP protobuf). Environment variables override the
//! file: `AGENTRY_STORE_SPANS`, `AGENTRY_SPAN_RETENTION_DAYS`, `AGENTRY_CAPTURE_CONTENT`, and the
//! endpoint from `AGENTRY_OTLP_ENDPOINT`, else the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! / `OTEL_EXPORTER_OTLP_ENDPOINT`; export headers come from `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
//! or `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,key2=value2`, values percent-encoded), never from
//! the file, since they usually hold credentials.

use std::path::PathBuf;
use std::time::Duration;

use agentry_engine::telemetry::{OtlpConfig, TelemetryConfig};
use serde::Deserialize;

use crate::config::{ConfigError, Source};

/// The `[telemetry]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    store_spans: Option<bool>,
    span_retention_days: Option<u64>,
    capture_content: Option<bool>,
    otlp_endpoint: Option<String>,
    otlp_timeout_secs: Option<u64>,
}

/// Variables read, in order of precedence per key.
pub(crate) const ENV: &[(&str, &str)] = &[
    ("store_spans", "AGENTRY_STORE_SPANS"),
    ("span_retention_days", "AGENTRY_SPAN_RETENTION_DAYS"),
    ("capture_content", "AGENTRY_CAPTURE_CONTENT"),
    ("otlp_endpoint", "AGENTRY_OTLP_ENDPOINT"),
    ("otlp_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
];
pub(crate) const HEADER_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"];

/// The telemetry settings as layered: the file's table, then the environment.
#[derive(Debug, Default)]
pub struct TelemetryLayers {
    file: Option<(TelemetrySection, PathBuf)>,
    /// key → (value, variable), the first variable of each key that is set.
    env: Vec<(&'static str, String, &'static str)>,
    headers: Option<(String, &'static str)>,
}

impl TelemetryLayers {
    /// Reads the `[telemetry]` table of a config file.
    pub fn read_file(&mut self, value: toml::Value, path: &std::path::Path) -> Result<(), ConfigError> {
        let section = value.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
            key: "telemetry",
            origin: Source::File(path.into()),
            problem: format!("[telemetry]: {}", e.message()),
        })?;
        self.file = Some((section, path.into()));
        Ok(())
    }

    /// Reads the environment.
    pub fn read_env(&mut self, env: &impl Fn(&str) -> Option<String>) {
        for (key, var) in ENV {
            if self.env.iter().any(|(k, _, _)| k == key) {
                continue;
            }
            if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
                self.env.push((key, value, var));
            }
        }
        self.headers = HEADER_VARS.iter().find_map(|var| Some((env(var).filter(|v| !v.trim().is_empty())?, *var)));
    }

    /// Checks the values and builds the engine's telemetry settings.
    pub fn resolve(&self) -> Result<TelemetryConfig, ConfigError> {
        let defaults = TelemetryConfig::default();
        let file = self.file.as_ref();
        let section = file.map(|(s, _)| s.clone()).unwrap_or_default();
        let file_source = || file.map_or(Source::Default, |(_, path)| Source::File(path.clone()));
        let env = |key: &str| self.env.iter().find(|(k, _, _)| *k == key).map(|(_, v, var)| (v.as_str(), *var));
        let invalid = |origin, problem: String| ConfigError::Invalid { key: "telemetry", origin, problem };
        let flag = |key: &str, from_file: Option<bool>, default: bool| match env(key) {
            Some((value, var)) => match value.trim() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(invalid(Source::Env(var), format!("{key}: `{other}` is not true or false"))),
            },
            None => Ok(from_file.unwrap_or(default)),
        };
        let store_spans = flag("store_spans", section.store_spans, defaults.store_spans)?;
        let capture_content = flag("capture_content", section.capture_content, defaults.capture_content)?;
        let retention_days = match env("span_retention_days") {
            Some((value, var)) => (value.trim().parse::<u64>().ok(), Source::Env(var), value.to_owned()),
            None => match section.span_retention_days {
                Some(days) => (Some(days), file_source(), days.to_string()),
                None => (Some(defaults.span_retention.as_secs() / 86_400), Source::Default, String::new()),
            },
        };
        let span_retention = match retention_days {
            (Some(days), _, _) if (1..=3650).contains(&days) => Duration::from_secs(days * 86_400),
            (_, origin, shown) => {
                return Err(invalid(
                    origin,
                    format!("span_retention_days: `{shown}` is not a whole number in 1..=3650"),
                ));
            }
        };
        let endpoint = match env("otlp_endpoint") {
            Some((value, var)) => Some((value.trim().to_owned(), Source::Env(var))),
            None => section.otlp_endpoint.clone().map(|e| (e, file_source())),
        };
        let otlp = match endpoint {
            None => None,
            Some((endpoint, origin)) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(invalid(origin, format!("otlp_endpoint: `{endpoint}` is not an http(s) URL")));
                }
                let timeout = match section.otlp_timeout_secs.unwrap_or(10) {
                    secs @ 1..=300 => Duration::from_secs(secs),
                    secs => {
                        return Err(invalid(file_source(), format!("otlp_timeout_secs: {secs} is outside 1..=300")));
                    }
                };
                let headers = match &self.headers {
                    Some((text, var)) => {
                        parse_headers(text).map_err(|problem| invalid(Source::Env(var), format!("{var}: {problem}")))?
                    }
                    None => Vec::new(),
                };
                Some(OtlpConfig { endpoint, headers, timeout })
            }
        };
        Ok(TelemetryConfig { store_spans, span_retention, capture_content, otlp })
    }
}

/// `key=value,key2=value2` with percent-encoded values (the OTLP exporter convention).
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
            let value = agentry_core::percent::decode(value.trim())
                .ok_or_else(|| format!("the value of `{}` is not valid", key.trim()))?;
            Ok((key.trim().to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(file: &str, env: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        let mut layers = TelemetryLayers::default();
        if !file.is_empty() {
            let value: toml::Value = toml::from_str(file).unwrap();
            layers.read_file(value, std::path::Path::new("agentry.toml"))?;
        }
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        layers.read_env(&|var: &str| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()));
        layers.resolve()
    }

    #[test]
    fn defaults_store_spans_for_thirty_days_without_content_or_export() {
        let config = layers("", &[]).unwrap();
        assert!(config.store_spans && !config.capture_content && config.otlp.is_none());
        assert_eq!(config.span_retention, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn the_environment_overrides_the_file_and_headers_come_from_otel_variables() {
        let file = "store_spans = false\nspan_retention_days = 3\notlp_endpoint = \"http://file:4318\"";
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc, x-team=ops"),
            ("AGENTRY_CAPTURE_CONTENT", "true"),
        ];
        let config = layers(file, &env).unwrap();
        assert!(!config.store_spans && config.capture_content);
        assert_eq!(config.span_retention, Duration::from_secs(3 * 86_400));
        let otlp = config.otlp.unwrap();
        assert_eq!(otlp.traces_url(), "http://collector:4318/v1/traces");
        assert_eq!(otlp.headers, [("authorization".into(), "Bearer abc".into()), ("x-team".into(), "ops".into())]);
    }

    #[test]
    fn bad_values_name_the_key_and_where_they_came_from() {
        let err = layers("otlp_endpoint = \"collector:4318\"", &[]).unwrap_err().to_string();
        assert!(err.contains("otlp_endpoint") && err.contains("agentry.toml"), "{err}");
        let err = layers("", &[("AGENTRY_SPAN_RETENTION_DAYS", "0")]).unwrap_err().to_string();
        assert!(err.contains("AGENTRY_SPAN_RETENTION_DAYS") && err.contains("1..=3650"), "{err}");
        let err = layers("sample_rate = 1", &[]).unwrap_err().to_string();
        assert!(err.contains("sample_rate"), "{err}");
        let err = layers("", &[("AGENTRY_OTLP_ENDPOINT", "http://c"), ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
    }
}
