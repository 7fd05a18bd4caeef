//! The Erdo wire types serialise to the JSON the server built by hand before them (the `json!`
//! literals below are those views), and read back.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::scope::Scope;
use crate::thread::ThreadStatus;

/// Serialises `value`, checks it is `expected`, and reads it back unchanged.
fn wire<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, expected: Value) {
    let json = serde_json::to_value(value).unwrap();
    assert_eq!(json, expected);
    assert_eq!(&serde_json::from_value::<T>(json).unwrap(), value);
}

fn thread(title: Option<&str>) -> Thread {
    Thread {
        id: "thr_1".into(),
        agent_id: "echo".into(),
        user_id: "ext:user".into(),
        scope: Scope::new("acme", "default", "default"),
        title: title.map(str::to_owned),
        status: ThreadStatus::Active,
        archived_at: None,
        created_at: Timestamp(1_780_000_000_000),
        updated_at: Timestamp(1_780_000_001_500),
    }
}

#[test]
fn threads_show_both_casings_of_their_times() {
    for title in [Some("Support"), None] {
        let thread = thread(title);
        wire(
            &ErdoThread::of(&thread),
            json!({
                "id": thread.id,
                "name": thread.title,
                "botKey": format!("{}.{}", thread.scope.organization_id, thread.agent_id),
                "createdAt": thread.created_at,
                "updatedAt": thread.updated_at,
                "created_at": thread.created_at,
                "updated_at": thread.updated_at,
            }),
        );
    }
    let list = ErdoThreadList { threads: vec![ErdoThread::of(&thread(None))], total: 7 };
    let listed = serde_json::to_value(&list).unwrap();
    assert_eq!(listed["total"], 7);
    assert_eq!(listed["threads"][0]["botKey"], "acme.echo");
    assert_eq!(listed["threads"][0]["updated_at"], "2026-05-28T20:26:41.500Z");
}

#[test]
fn messages_show_their_content_items() {
    let mut message = Message::new("thr_1", MessageRole::Assistant, "hello".into(), Some("trn_1"));
    message.created_at = Timestamp(1_780_000_000_000);
    let table = ContentItem {
        id: format!("{}_c1", message.id),
        message_id: message.id.clone(),
        content_type: "table".into(),
        ui_content_type: None,
        content: json!({"tableColumns": ["a"], "tableData": [[1]]}),
        user_visibility: "hidden".into(),
        created_by_invocation_id: "trn_1".into(),
        created_at: Timestamp(1_780_000_000_100),
    };
    for items in [None, Some(vec![table.clone()])] {
        let shown = items.clone().unwrap_or_else(|| vec![ContentItem::text(&message, "")]);
        let contents: Vec<Value> = shown
            .iter()
            .map(|item| {
                json!({
                    "id": item.id,
                    "message_id": item.message_id,
                    "content_type": item.content_type,
                    "ui_content_type": item.ui_content_type,
                    "history_content_type": Value::Null,
                    "content": item.content,
                    "user_visibility": item.user_visibility,
                    "bot_visibility": "visible",
                    "created_at": item.created_at,
                    "createdAt": item.created_at,
                    "created_by_invocation_id": item.created_by_invocation_id,
                })
            })
            .collect();
        wire(
            &ThreadMessage::of(&message, items),
            json!({
                "id": message.id,
                "thread_id": message.thread_id,
                "threadId": message.thread_id,
                "role": "assistant",
                "created_at": message.created_at,
                "updated_at": message.created_at,
                "createdAt": message.created_at,
                "updatedAt": message.created_at,
                "contents": contents,
            }),
        );
    }
    let page = ThreadMessages { messages: vec![ThreadMessage::of(&message, Some(vec![table]))] };
    assert_eq!(page.messages[0].text(), "", "a hidden table is no text");
    assert_eq!(ThreadMessage::of(&message, None).text(), "hello");
    assert_eq!(serde_json::to_value(&page).unwrap()["messages"][0]["contents"][0]["ui_content_type"], Value::Null);
}

#[test]
fn tokens_show_both_casings_and_hide_the_secret_from_debug() {
    let expires_at = Timestamp(1_780_000_000_000);
    let token = ScopedToken::new("stk_1", "erdo_st_secret".into(), expires_at);
    let expires = expires_at.to_rfc3339();
    wire(
        &token,
        json!({
            "tokenId": "stk_1",
            "token_id": "stk_1",
            "token": "erdo_st_secret",
            "expiresAt": expires,
            "expires_at": expires,
        }),
    );
    assert!(!format!("{token:?}").contains("erdo_st_secret"));
    wire(&RevokedToken::new("stk_1"), json!({ "revoked": true, "tokenId": "stk_1", "token_id": "stk_1" }));
}

#[test]
fn datasets_and_query_results() {
    let created_at = Timestamp(1_780_000_000_000);
    for thread_id in [Some("thr_1".to_owned()), None] {
        let columns = json!([{"name": "region", "value_type": "text"}]);
        let dataset = Dataset {
            id: "dst_1".into(),
            slug: "sales".into(),
            name: "Sales".into(),
            thread_id: thread_id.clone(),
            thread_id_camel: thread_id.clone(),
            columns: columns.clone(),
            row_count: 3,
            row_count_camel: 3,
            created_at,
            created_at_camel: created_at,
        };
        let expected = json!({
            "id": "dst_1",
            "slug": "sales",
            "name": "Sales",
            "thread_id": thread_id,
            "threadId": thread_id,
            "columns": columns,
            "row_count": 3,
            "rowCount": 3,
            "created_at": created_at,
            "createdAt": created_at,
        });
        wire(&dataset, expected.clone());
        wire(&DatasetList { datasets: vec![dataset] }, json!({ "datasets": [expected] }));
    }
    let rows = vec![vec![json!("north"), json!(1.5), Value::Null]];
    wire(
        &DatasetQueryResult { columns: vec!["a".into()], row_count: rows.len(), truncated: false, rows: rows.clone() },
        json!({ "columns": ["a"], "row_count": 1, "truncated": false, "rows": rows }),
    );
}

#[test]
fn request_bodies_are_read_in_either_casing_and_written_with_what_is_set() {
    let token: TokenParams = serde_json::from_value(
        json!({"bot_keys": ["echo"], "externalUserId": "u", "expires_in_seconds": 60, "datasetIds": null}),
    )
    .unwrap();
    assert_eq!(
        token,
        TokenParams {
            bot_keys: Some(vec!["echo".into()]),
            external_user_id: Some("u".into()),
            expires_in_seconds: Some(60),
            ..TokenParams::default()
        }
    );
    assert_eq!(
        serde_json::to_value(&token).unwrap(),
        json!({"botKeys": ["echo"], "externalUserId": "u", "expiresInSeconds": 60})
    );

    let thread: CreateThread =
        serde_json::from_value(json!({"name": "n", "dataset_ids": ["d"], "bot_key": "b"})).unwrap();
    assert_eq!(serde_json::to_value(&thread).unwrap(), json!({"name": "n", "datasetIds": ["d"], "botKey": "b"}));
    assert_eq!(serde_json::to_value(CreateThread::default()).unwrap(), json!({}));
    let send: SendMessage = serde_json::from_value(json!({"content": "hi", "bot_key": "b"})).unwrap();
    assert_eq!(serde_json::to_value(&send).unwrap(), json!({"content": "hi", "botKey": "b"}));

    let invoke: InvokeBody = serde_json::from_value(json!({"messages": [{"role": "user", "content": "hi"}],
        "datasets": ["sales"], "manualMocks": {"llm": {}}, "mode": "manual"}))
    .unwrap();
    assert_eq!(invoke.messages, vec![ChatMessage::user("hi")]);
    assert_eq!((invoke.dataset_slugs.as_slice(), invoke.parameters.is_null()), (["sales".to_owned()].as_slice(), true));
    assert_eq!(
        serde_json::to_value(&invoke).unwrap(),
        json!({"messages": [{"role": "user", "content": "hi"}], "dataset_slugs": ["sales"], "mode": "manual",
               "manual_mocks": {"llm": {}}})
    );
    let from_thread =
        InvokeFromThread { thread_id: "thr_1".into(), message: "hi".into(), parameters: json!({}), mode: None };
    wire(&from_thread, json!({"thread_id": "thr_1", "message": "hi", "parameters": {}}));
}

#[test]
fn events_keep_what_they_carry_and_read_results() {
    let result = json!({"status": "success", "parameters": {}, "message": "hi there",
        "output": {"content": [{"id": "c0", "content_type": "text", "content": "hi there"},
                                {"content_type": "json", "content": {"a": 1}}]}, "error": null});
    let event: ErdoEvent = serde_json::from_value(
        json!({"type": "result", "payload": result, "metadata": {"role": "assistant"}, "invocation_id": "trn_1"}),
    )
    .unwrap();
    let read = event.result().unwrap();
    assert!(event.is_result() && read.is_success());
    assert_eq!(read.texts(), vec!["hi there"]);
    assert_eq!(serde_json::to_value(&read).unwrap(), result);

    let completed = json!({"type": "invocation_completed", "invocation_id": "trn_1", "result": result});
    let event: ErdoEvent = serde_json::from_value(completed.clone()).unwrap();
    assert_eq!((event.payload.as_ref(), event.any_invocation_id()), (None, Some("trn_1")));
    assert_eq!(serde_json::to_value(&event).unwrap(), completed, "no payload or metadata appears");

    let delta = json!({"type": "message content delta", "payload": "hi", "metadata": {"content_type": "text"}});
    let event: ErdoEvent = serde_json::from_value(delta.clone()).unwrap();
    assert_eq!((event.text_delta(), event.user_visibility()), (Some("hi"), "visible"));
    assert_eq!(serde_json::to_value(&event).unwrap(), delta);
    let odd = BotResult::from_payload(&json!({"status": 1, "output": [], "message": {"m": 1}})).unwrap();
    assert_eq!((odd.status.as_str(), odd.message.as_deref(), odd.content()), ("1", Some(r#"{"m":1}"#), &[][..]));
}
