//! The artifact tools: `generate_artifact` makes revision 1 of a new key, `revise_artifact`
//! appends a revision (the kind never changes). Content is validated and sanitised by
//! [`agentry_core::artifact::prepare`]; each revision streams as `artifact_start`, `artifact_delta`
//! chunks and `artifact_committed` — or `artifact_error` — and is stored immutably.

use agentry_core::artifact::{ArtifactKind, new_artifact_key, prepare};
use agentry_core::id::{new_id, prefix};
use agentry_core::{Timestamp, Turn, TurnEvent};
use agentry_store::ArtifactRevision;
use serde_json::{Value, json};

use crate::Engine;
use crate::log::TurnLog;
use crate::tools::ToolFailure;

/// Size of the `artifact_delta` chunks.
const CHUNK_BYTES: usize = 16 * 1024;

/// `generate_artifact {kind, content, title?, language?}`.
pub async fn generate(engine: &Engine, turn: &Turn, log: &mut TurnLog, params: &Value) -> Result<Value, ToolFailure> {
    let kind_name = text(params, "kind").unwrap_or_default();
    let Some(kind) = ArtifactKind::parse(&kind_name) else {
        let message = format!("unknown artifact kind `{kind_name}` (markdown, code, html, json, csv, svg, image)");
        log.emit(TurnEvent::ArtifactError {
            artifact_id: None,
            artifact_key: None,
            code: "invalid_kind".into(),
            message: message.clone(),
        });
        return Err(ToolFailure::new(message));
    };
    let draft = Draft {
        key: new_artifact_key(),
        revision: 1,
        kind,
        title: text(params, "title"),
        language: text(params, "language"),
        op: "generate",
    };
    commit(engine, turn, log, draft, params).await
}

/// `revise_artifact {artifactKey, content, title?}`.
pub async fn revise(engine: &Engine, turn: &Turn, log: &mut TurnLog, params: &Value) -> Result<Value, ToolFailure> {
    let key = text(params, "artifactKey").or_else(|| text(params, "artifact_key")).unwrap_or_default();
    let latest = engine
        .store()
        .latest_artifact(&turn.scope, &turn.thread_id, &key)
        .await
        .map_err(|e| ToolFailure::new(format!("cannot read the artifact: {e}")))?;
    let Some(latest) = latest else {
        let message = format!("no artifact `{key}` in this thread");
        log.emit(TurnEvent::ArtifactError {
            artifact_id: None,
            artifact_key: Some(key),
            code: "not_found".into(),
            message: message.clone(),
        });
        return Err(ToolFailure::new(message));
    };
    let kind = ArtifactKind::parse(&latest.kind)
        .ok_or_else(|| ToolFailure::new(format!("stored artifact has an unknown kind `{}`", latest.kind)))?;
    let draft = Draft {
        key,
        revision: latest.revision + 1,
        kind,
        title: text(params, "title").or(latest.title),
        language: latest.language,
        op: "revise",
    };
    commit(engine, turn, log, draft, params).await
}

struct Draft {
    key: String,
    revision: i64,
    kind: ArtifactKind,
    title: Option<String>,
    language: Option<String>,
    op: &'static str,
}

/// Streams, validates and stores one revision.
async fn commit(
    engine: &Engine,
    turn: &Turn,
    log: &mut TurnLog,
    draft: Draft,
    params: &Value,
) -> Result<Value, ToolFailure> {
    let id = new_id(prefix::ARTIFACT);
    log.emit(TurnEvent::ArtifactStart {
        artifact_id: id.clone(),
        artifact_key: draft.key.clone(),
        kind: draft.kind.as_str().into(),
        revision: draft.revision,
        title: draft.title.clone(),
        language: draft.language.clone(),
        op: draft.op.into(),
    });
    let fail = |log: &mut TurnLog, code: &str, message: String| {
        log.emit(TurnEvent::ArtifactError {
            artifact_id: Some(id.clone()),
            artifact_key: Some(draft.key.clone()),
            code: code.into(),
            message: message.clone(),
        });
        ToolFailure::new(message)
    };
    let Some(content) = params.get("content").and_then(Value::as_str) else {
        return Err(fail(log, "invalid_content", "`content` must be a string".into()));
    };
    let prepared = match prepare(draft.kind, content) {
        Ok(prepared) => prepared,
        Err(err) => return Err(fail(log, err.code, err.message)),
    };
    for chunk in chunks(&prepared.content, CHUNK_BYTES) {
        log.emit(TurnEvent::ArtifactDelta {
            artifact_id: id.clone(),
            artifact_key: draft.key.clone(),
            chunk: chunk.to_owned(),
        });
    }
    let revision = ArtifactRevision {
        id: id.clone(),
        thread_id: turn.thread_id.clone(),
        turn_id: turn.id.clone(),
        artifact_key: draft.key.clone(),
        revision: draft.revision,
        kind: draft.kind.as_str().into(),
        title: draft.title.clone(),
        language: draft.language.clone(),
        content: prepared.content,
        created_at: Timestamp::now(),
    };
    if let Err(err) = engine.store().insert_artifact(&turn.scope, &revision).await {
        return Err(fail(log, "persist_failed", format!("the revision could not be stored: {err}")));
    }
    log.emit(TurnEvent::ArtifactCommitted {
        artifact_id: id.clone(),
        artifact_key: draft.key.clone(),
        kind: revision.kind.clone(),
        revision: draft.revision,
        title: draft.title,
        language: draft.language,
        final_content: revision.content,
        created_at: revision.created_at,
    });
    Ok(json!({
        "artifactKey": draft.key,
        "artifactId": id,
        "revision": draft.revision,
        "kind": revision.kind,
        "sanitised": prepared.removed,
    }))
}

fn text(params: &Value, field: &str) -> Option<String> {
    params.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// Splits text into pieces of at most `size` bytes, on character boundaries.
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_respect_character_boundaries() {
        let text = "ééé";
        assert_eq!(super::chunks(text, 3), vec!["é", "é", "é"]);
        assert_eq!(super::chunks("abcde", 2), vec!["ab", "cd", "e"]);
        assert!(super::chunks("", 4).is_empty());
    }
}
