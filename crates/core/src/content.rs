//! Content items: the typed pieces an answer is made of (text, json, code, table, chart, image,
//! error), stored per message and shown by content-aware clients (the Erdo surface).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::thread::Message;
use crate::time::Timestamp;

/// One typed piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContentItem {
    /// `<message id>_c<n>`: stable, so a stream and the stored history name it alike.
    pub id: String,
    /// The message it belongs to.
    pub message_id: String,
    /// `text`, `json`, `code`, `table`, `chart`, `image`, `error`.
    pub content_type: String,
    /// How a UI renders it: `markdown`, `table`, `bar`, `line`, `pie`, `scatter`, …
    pub ui_content_type: Option<String>,
    /// The content: a string for text, structured JSON for the others.
    pub content: Value,
    /// `visible` or `hidden`.
    pub user_visibility: String,
    /// The turn (invocation) that produced it; UIs fetch chart and table data by it.
    pub created_by_invocation_id: String,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl ContentItem {
    /// The id of a message's `n`th content item.
    pub fn id_for(message_id: &str, n: usize) -> String {
        format!("{message_id}_c{n}")
    }

    /// A message's text as its first content item (markdown).
    pub fn text(message: &Message, invocation_id: &str) -> Self {
        ContentItem {
            id: Self::id_for(&message.id, 0),
            message_id: message.id.clone(),
            content_type: "text".into(),
            ui_content_type: Some("markdown".into()),
            content: Value::String(message.content.clone()),
            user_visibility: "visible".into(),
            created_by_invocation_id: invocation_id.to_owned(),
            created_at: message.created_at,
        }
    }
}
