//! rmcp's wire types → the JSON the engine hands to a model.

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use serde_json::Value;

/// One tool a server offers.
#[derive(Debug, Clone, PartialEq)]
pub struct McpToolInfo {
    /// The tool's name on its server.
    pub name: String,
    /// What the tool does ("" when the server gives no description).
    pub description: String,
    /// JSON Schema of the tool's arguments (an object schema).
    pub input_schema: Value,
}

/// The outcome of a tool call that reached the tool.
#[derive(Debug, Clone, PartialEq)]
pub struct McpCallResult {
    /// The result as JSON: the structured content if any, else the content blocks simplified.
    pub content: Value,
    /// The tool reported its own failure (`isError: true`); `content` then says why.
    pub is_error: bool,
}

impl From<Tool> for McpToolInfo {
    fn from(tool: Tool) -> Self {
        McpToolInfo {
            name: tool.name.into_owned(),
            description: tool.description.map(|d| d.into_owned()).unwrap_or_default(),
            input_schema: Value::Object(std::sync::Arc::unwrap_or_clone(tool.input_schema)),
        }
    }
}

impl From<CallToolResult> for McpCallResult {
    fn from(result: CallToolResult) -> Self {
        McpCallResult { is_error: result.is_error.unwrap_or(false), content: content_json(result) }
    }
}

/// Structured content wins, since it is what the tool declared in its output schema. Otherwise
/// text blocks become plain strings, so a model sees `"hi"` rather than `{"type":"text",...}`.
fn content_json(result: CallToolResult) -> Value {
    if let Some(structured) = result.structured_content {
        return structured;
    }
    let mut blocks = result.content;
    if blocks.len() == 1
        && let ContentBlock::Text(text) = &mut blocks[0]
    {
        let text = std::mem::take(&mut text.text);
        // Many servers print JSON as text; handing it over parsed saves the model a decode. Bare
        // scalars stay text: "42" or "true" were more likely meant as words than as JSON.
        return match serde_json::from_str::<Value>(&text) {
            Ok(value @ (Value::Object(_) | Value::Array(_))) => value,
            _ => Value::String(text),
        };
    }
    Value::Array(blocks.into_iter().map(block_json).collect())
}

fn block_json(block: ContentBlock) -> Value {
    match block {
        ContentBlock::Text(text) => Value::String(text.text),
        other => {
            serde_json::to_value(&other).unwrap_or_else(|e| Value::String(format!("<unserializable content: {e}>")))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn convert(wire: Value) -> McpCallResult {
        serde_json::from_value::<CallToolResult>(wire).unwrap().into()
    }

    #[test]
    fn structured_content_wins() {
        let r = convert(json!({"content": [{"type": "text", "text": "5"}], "structuredContent": {"result": 5}}));
        assert_eq!(r, McpCallResult { content: json!({"result": 5}), is_error: false });
    }

    #[test]
    fn text_becomes_a_string_or_parsed_json() {
        assert_eq!(convert(json!({"content": [{"type": "text", "text": "hi"}]})).content, json!("hi"));
        assert_eq!(convert(json!({"content": [{"type": "text", "text": "{\"a\": [1]}"}]})).content, json!({"a": [1]}));
        assert_eq!(convert(json!({"content": [{"type": "text", "text": "[1, 2]"}]})).content, json!([1, 2]));
        assert_eq!(convert(json!({"content": [{"type": "text", "text": "42"}]})).content, json!("42"));
        assert_eq!(
            convert(json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "{}"}]})).content,
            json!(["a", "{}"])
        );
        assert_eq!(convert(json!({"content": []})).content, json!([]));
    }

    #[test]
    fn other_blocks_keep_their_json_form() {
        let r = convert(json!({
            "content": [{"type": "text", "text": "see"}, {"type": "image", "data": "iQ==", "mimeType": "image/png"}],
            "isError": true
        }));
        assert!(r.is_error);
        assert_eq!(r.content, json!(["see", {"type": "image", "data": "iQ==", "mimeType": "image/png"}]));
    }
}
