//! `[mcp_servers.<name>]` of agentry.toml.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use crate::McpError;

/// Per-call timeout when `timeout_secs` is not set.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Headers the streamable-HTTP transport sets itself; rmcp refuses to send a request carrying
/// them, so they are refused here, when the config is loaded, rather than on first use.
const TRANSPORT_HEADERS: &[&str] = &["accept", "mcp-session-id", "last-event-id", "mcp-protocol-version"];

/// How to reach one MCP server (from `[mcp_servers.<name>]` in agentry.toml).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// stdio server: program to start (exclusive with `url`).
    #[serde(default)]
    pub command: Option<String>,
    /// Arguments of `command`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment of the child process (values are literal; the caller resolves secrets).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Streamable-HTTP server URL (exclusive with `command`).
    #[serde(default)]
    pub url: Option<String>,
    /// Extra HTTP headers for `url` servers (e.g. Authorization).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-call timeout in seconds (default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl McpServerConfig {
    /// Checks that exactly one of `command`/`url` is set, that `url` is http(s), and that the
    /// options of the other kind of server are not set (they would be silently ignored).
    pub fn validate(&self) -> Result<(), McpError> {
        let bad = |msg: String| Err(McpError::Config(msg));
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                return bad("set either `command` (stdio) or `url` (streamable HTTP), not both".into());
            }
            (None, None) => return bad("set `command` (stdio server) or `url` (streamable-HTTP server)".into()),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return bad("`command` is empty".into());
                }
                if !self.headers.is_empty() {
                    return bad("`headers` only apply to `url` servers".into());
                }
                for key in self.env.keys() {
                    if key.is_empty() || key.contains(['=', '\0']) {
                        return bad(format!("`env` key {key:?} is not a valid variable name"));
                    }
                }
            }
            (None, Some(url)) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| McpError::Config(format!("`url` {url:?}: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                    return bad(format!("`url` {url:?} must be an http:// or https:// URL"));
                }
                if !self.args.is_empty() || !self.env.is_empty() {
                    return bad("`args` and `env` only apply to `command` servers".into());
                }
                header_map(&self.headers)?;
            }
        }
        if self.timeout_secs == Some(0) {
            return bad("`timeout_secs` must be at least 1".into());
        }
        Ok(())
    }

    /// The per-call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))
    }
}

/// `headers` as the HTTP transport takes them.
pub(crate) fn header_map(
    headers: &BTreeMap<String, String>,
) -> Result<std::collections::HashMap<HeaderName, HeaderValue>, McpError> {
    headers
        .iter()
        .map(|(name, value)| {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| McpError::Config(format!("`headers`: {name:?} is not a valid header name")))?;
            if TRANSPORT_HEADERS.contains(&header.as_str()) {
                return Err(McpError::Config(format!("`headers`: {name:?} is set by the MCP transport itself")));
            }
            // The value may be a secret: never echo it in the error.
            let value = HeaderValue::from_str(value).map_err(|_| {
                McpError::Config(format!("`headers`: the value of {name:?} is not a valid header value"))
            })?;
            Ok((header, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<McpServerConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    fn config_error(config: &McpServerConfig) -> String {
        match config.validate() {
            Err(McpError::Config(msg)) => msg,
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn stdio_and_http_configs_parse_and_validate() {
        let stdio = parse(
            r#"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-everything"]
            env = { TOKEN = "t" }
            timeout_secs = 5
            "#,
        )
        .unwrap();
        assert_eq!(stdio.command.as_deref(), Some("npx"));
        assert_eq!(stdio.args.len(), 2);
        assert_eq!(stdio.timeout(), Duration::from_secs(5));
        stdio.validate().unwrap();

        let http = parse(
            r#"
            url = "https://mcp.example.com/mcp"
            headers = { Authorization = "Bearer x" }
            "#,
        )
        .unwrap();
        assert_eq!(http.timeout(), Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        http.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse("command = \"x\"\ncomand = \"y\"").unwrap_err();
        assert!(err.to_string().contains("comand"), "{err}");
    }

    #[test]
    fn invalid_configs_say_why() {
        let base = parse("command = \"x\"").unwrap();
        let both = McpServerConfig { url: Some("http://127.0.0.1:1/mcp".into()), ..base.clone() };
        assert!(config_error(&both).contains("not both"));
        let neither = McpServerConfig { command: None, ..base.clone() };
        assert!(config_error(&neither).contains("`command`"));
        let empty = McpServerConfig { command: Some(" ".into()), ..base.clone() };
        assert!(config_error(&empty).contains("empty"));
        let zero = McpServerConfig { timeout_secs: Some(0), ..base.clone() };
        assert!(config_error(&zero).contains("timeout_secs"));
        let headers_on_stdio = McpServerConfig { headers: [("A".to_string(), "b".to_string())].into(), ..base.clone() };
        assert!(config_error(&headers_on_stdio).contains("headers"));

        let http = parse("url = \"http://127.0.0.1:1/mcp\"").unwrap();
        for url in ["ftp://host/x", "not a url", "file:///tmp/x"] {
            let bad = McpServerConfig { url: Some(url.into()), ..http.clone() };
            assert!(config_error(&bad).contains("url"), "{url}");
        }
        let args_on_http = McpServerConfig { args: vec!["a".into()], ..http.clone() };
        assert!(config_error(&args_on_http).contains("args"));
        let secret = "Bearer s3cr3t\n";
        let bad_value = McpServerConfig { headers: [("Authorization".into(), secret.into())].into(), ..http.clone() };
        let msg = config_error(&bad_value);
        assert!(msg.contains("Authorization") && !msg.contains("s3cr3t"), "{msg}");
        let reserved = McpServerConfig { headers: [("Mcp-Session-Id".into(), "x".into())].into(), ..http };
        assert!(config_error(&reserved).contains("transport"));
    }
}
