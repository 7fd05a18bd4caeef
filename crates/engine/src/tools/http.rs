//! HTTP tools: an agent-declared endpoint called with the model's arguments.
//!
//! `{param}` in the URL takes the percent-encoded argument; the other arguments go in the query
//! string (GET, DELETE) or a JSON body (POST, PUT, PATCH). Header values may use
//! `{{secrets.NAME}}`, filled from the server's configured secrets. The response body, capped,
//! is the result: parsed JSON when it is JSON, else text. A status of 400 or more is a tool error.

use std::collections::BTreeMap;
use std::time::Duration;

use agentry_core::tool::{HttpToolSpec, secret_references};
use serde_json::{Map, Value};

use super::ToolFailure;

/// Calls the endpoint. `max_bytes` caps the response body kept.
pub async fn call(
    client: &reqwest::Client,
    tool: &HttpToolSpec,
    secrets: &BTreeMap<String, String>,
    arguments: &Value,
    default_timeout: Duration,
    max_bytes: usize,
) -> Result<Value, ToolFailure> {
    let Value::Object(arguments) = arguments else {
        return Err(ToolFailure::new("arguments must be a JSON object"));
    };
    let mut rest = arguments.clone();
    let url = fill_url(&tool.url, &mut rest)?;
    let mut url = reqwest::Url::parse(&url).map_err(|e| ToolFailure::new(format!("bad url `{url}`: {e}")))?;
    let method = match tool.method {
        agentry_core::tool::HttpMethod::Get => reqwest::Method::GET,
        agentry_core::tool::HttpMethod::Post => reqwest::Method::POST,
        agentry_core::tool::HttpMethod::Put => reqwest::Method::PUT,
        agentry_core::tool::HttpMethod::Patch => reqwest::Method::PATCH,
        agentry_core::tool::HttpMethod::Delete => reqwest::Method::DELETE,
    };
    if !tool.method.has_body() && !rest.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &rest {
            pairs.append_pair(name, &scalar_text(value));
        }
    }
    let timeout = tool.timeout_secs.map_or(default_timeout, Duration::from_secs);
    let mut request = client.request(method, url).timeout(timeout);
    for (name, template) in &tool.headers {
        request = request.header(name, fill_secrets(template, secrets)?);
    }
    if tool.method.has_body() {
        request = request.json(&Value::Object(rest));
    }
    let mut response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            ToolFailure::new(format!("timed out after {timeout:?}"))
        } else {
            ToolFailure::new(format!("request failed: {}", without_url(&e)))
        }
    })?;
    let status = response.status();
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ToolFailure::new(format!("reading the response failed: {}", without_url(&e))))?
    {
        let room = max_bytes.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(ToolFailure::new(format!("HTTP {}: {}", status.as_u16(), text.trim())));
    }
    if truncated {
        return Ok(serde_json::json!({
            "truncated": true,
            "note": format!("the response was cut at {max_bytes} bytes"),
            "body": text,
        }));
    }
    Ok(if is_json { serde_json::from_str(&text).unwrap_or(Value::String(text)) } else { Value::String(text) })
}

/// reqwest errors name the URL, which may carry arguments; the model gets the cause only.
fn without_url(err: &reqwest::Error) -> String {
    let mut cause = err.to_string();
    if let Some(url) = err.url() {
        cause = cause.replace(&format!(" ({url})"), "").replace(url.as_str(), "<url>");
    }
    cause
}

/// Replaces `{name}` placeholders with percent-encoded arguments, removing them from `rest`.
fn fill_url(template: &str, rest: &mut Map<String, Value>) -> Result<String, ToolFailure> {
    let mut out = String::with_capacity(template.len());
    let mut tail = template;
    while let Some(start) = tail.find('{') {
        let Some(len) = tail[start..].find('}') else { break };
        let name = &tail[start + 1..start + len];
        let value = rest.remove(name).ok_or_else(|| ToolFailure::new(format!("missing argument `{name}`")))?;
        out.push_str(&tail[..start]);
        out.push_str(&agentry_core::percent::encode(&scalar_text(&value)));
        tail = &tail[start + len + 1..];
    }
    out.push_str(tail);
    Ok(out)
}

/// Fills `{{secrets.NAME}}` from the configured secrets.
fn fill_secrets(template: &str, secrets: &BTreeMap<String, String>) -> Result<String, ToolFailure> {
    let mut value = template.to_owned();
    for name in secret_references(template) {
        let secret = secrets
            .get(&name)
            .ok_or_else(|| ToolFailure::new(format!("secret `{name}` is not configured on this server")))?;
        for form in [format!("{{{{secrets.{name}}}}}"), format!("{{{{ secrets.{name} }}}}")] {
            value = value.replace(&form, secret);
        }
    }
    Ok(value)
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_placeholders_take_encoded_arguments() {
        let mut rest = json!({"id": "a/b c", "n": 3, "q": "x"}).as_object().cloned().unwrap();
        assert_eq!(fill_url("http://h/o/{id}/{n}", &mut rest).unwrap(), "http://h/o/a%2Fb%20c/3");
        assert_eq!(rest.len(), 1);
        assert!(fill_url("http://h/{missing}", &mut rest).is_err());
    }

    #[test]
    fn secrets_are_filled_and_missing_ones_refused() {
        let secrets = BTreeMap::from([("shop".to_owned(), "s3cret".to_owned())]);
        assert_eq!(fill_secrets("Bearer {{secrets.shop}}", &secrets).unwrap(), "Bearer s3cret");
        assert_eq!(fill_secrets("Bearer {{ secrets.shop }}", &secrets).unwrap(), "Bearer s3cret");
        assert!(fill_secrets("{{secrets.other}}", &secrets).is_err());
    }
}
