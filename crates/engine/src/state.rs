//! What a turn has done so far — everything needed to resume it on any replica: after a wait
//! for approvals, or after the replica running it died.
//!
//! It is saved with the turn (its checkpoint) when the turn parks, after each model step that
//! called tools and after each tool call, always once the events describing it are in the log.

use agentry_core::{ContentItem, Timestamp, TokenUsage, ToolStep, ToolStepCall};
use agentry_llm::{ChatMessage, ChatRole, ToolCallRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A turn's progress.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TurnState {
    /// Id of the answer's message (named in `meta`, used when it is stored).
    #[serde(default)]
    pub message_id: String,
    /// Model calls made.
    pub step: u32,
    /// The prompt as it grows over the tool steps.
    pub messages: Vec<ChatMessage>,
    /// Usage so far (the sum of this turn's ledger rows).
    pub usage: TokenUsage,
    /// The answer text the user saw, across tool steps.
    pub answer: String,
    /// Tool calls of the current step not yet answered.
    pub calls: Vec<PendingCall>,
    /// Content items tools added to the answer (tables, charts).
    #[serde(default)]
    pub contents: Vec<ContentItem>,
    /// The model steps that called tools, with their results (stored with the answer).
    #[serde(default)]
    pub tool_steps: Vec<ToolStep>,
    /// The text of the step that ended the answer.
    #[serde(default)]
    pub final_text: String,
    /// The turn was taken over from a replica that died: the ledger may hold calls this state
    /// does not count, so the turn's usage is read from the ledger.
    #[serde(default)]
    pub taken_over: bool,
    /// The turn passed its caps' turn limits.
    #[serde(default)]
    pub turn_counted: bool,
    /// The turn is counted in its caps' windows (at the turn-limit check, or with its first
    /// call's spend).
    #[serde(default)]
    pub counted_in_windows: bool,
}

/// A tool call waiting to run (after its approval, if it needs one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingCall {
    pub id: String,
    pub name: String,
    /// Parsed arguments, or why they could not be used.
    pub params: Result<Value, String>,
    pub approval_id: Option<String>,
}

impl TurnState {
    /// Reads a saved state.
    pub fn load(saved: &str) -> Result<TurnState, String> {
        serde_json::from_str(saved).map_err(|err| format!("the saved state of this turn cannot be read: {err}"))
    }

    /// The state to save.
    pub fn save(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|err| format!("cannot save the turn's state: {err}"))
    }

    /// Appends a step's text to the answer (a blank line after the previous step's) and records
    /// it as the answer's next text content item, `<message id>_c<n>` — the id streams name it by.
    pub fn add_answer(&mut self, text: &str, invocation_id: &str) {
        if text.is_empty() {
            return;
        }
        if !self.answer.is_empty() {
            self.answer.push_str("\n\n");
        }
        self.answer.push_str(text);
        let segment = self.contents.iter().filter(|c| c.content_type == "text").count() + 1;
        self.contents.push(ContentItem {
            id: ContentItem::id_for(&self.message_id, segment),
            message_id: self.message_id.clone(),
            content_type: "text".into(),
            ui_content_type: Some("markdown".into()),
            content: Value::String(text.to_owned()),
            user_visibility: "visible".into(),
            created_by_invocation_id: invocation_id.to_owned(),
            created_at: Timestamp::now(),
        });
    }

    /// Records a model step that called tools: in the prompt, and as a tool step of the answer.
    pub fn add_tool_step(&mut self, text: String, calls: &[ToolCallRequest]) {
        self.tool_steps.push(ToolStep {
            text: text.clone(),
            calls: calls
                .iter()
                .map(|c| ToolStepCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                    result: String::new(),
                    is_error: false,
                })
                .collect(),
        });
        self.messages.push(ChatMessage {
            role: ChatRole::Assistant,
            content: text,
            tool_calls: calls.to_vec(),
            tool_call_id: None,
        });
    }

    /// Records a tool call's result: in the prompt, and with its call in the answer's tool steps.
    pub fn add_tool_result(&mut self, call_id: &str, result: &Value, is_error: bool) {
        let content = result.to_string();
        if let Some(call) = self.tool_steps.iter_mut().rev().flat_map(|s| s.calls.iter_mut()).find(|c| c.id == call_id)
        {
            call.result = content.clone();
            call.is_error = is_error;
        }
        self.messages.push(ChatMessage {
            role: ChatRole::Tool,
            content,
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.to_owned()),
        });
    }

    /// The answer's tool steps and its final step, for storing with the message (none when no
    /// tool was called).
    pub fn answer_steps(&self) -> Vec<ToolStep> {
        if self.tool_steps.is_empty() {
            return Vec::new();
        }
        let mut steps = self.tool_steps.clone();
        // Calls the turn ended before (stopped, failed) still get an answer: providers want one
        // result per call.
        for call in steps.iter_mut().flat_map(|s| s.calls.iter_mut()).filter(|c| c.result.is_empty()) {
            call.result = r#"{"error":"the turn ended before this call ran"}"#.to_owned();
            call.is_error = true;
        }
        if !self.final_text.is_empty() {
            steps.push(ToolStep { text: self.final_text.clone(), calls: Vec::new() });
        }
        steps
    }
}
