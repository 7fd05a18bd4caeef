//! Prompt assembly: the agent's system prompt with `{{user.name}}`/`{{user.email}}` filled in, its
//! declared dynamic blocks appended, then the thread's history.

use agentry_core::{AgentSpec, Message, MessageRole, TurnInput, UserMeta};
use agentry_llm::{ChatMessage, ChatRole, ToolCallRequest};

/// The system prompt of a turn.
pub fn system_prompt(agent: &AgentSpec, input: &TurnInput) -> String {
    let mut prompt = render(&agent.system_prompt, &input.user_meta);
    let mut blocks: Vec<_> = agent.dynamic_blocks.iter().collect();
    blocks.sort_by_key(|b| b.order);
    for block in blocks {
        let content = input.dynamic_blocks.get(&block.key).unwrap_or(&block.default_content);
        if content.trim().is_empty() {
            continue;
        }
        if !prompt.is_empty() {
            prompt.push_str("\n\n");
        }
        prompt.push_str(&format!("## {}\n{}", block.name, render(content, &input.user_meta)));
    }
    prompt
}

/// Replaces `{{user.name}}` and `{{user.email}}` (spaces inside the braces allowed); unknown
/// details become empty.
pub fn render(template: &str, user: &UserMeta) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        let key = rest[start + 2..start + len].trim();
        let value = match key {
            "user.name" => Some(user.name.as_deref().unwrap_or("")),
            "user.email" => Some(user.email.as_deref().unwrap_or("")),
            _ => None,
        };
        out.push_str(&rest[..start]);
        match value {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The model's view of the thread: system prompt then history (which ends with the new message).
/// An answer that used tools is sent as the provider saw it: each model step with its tool calls,
/// followed by the tools' results.
pub fn messages(system: String, history: &[Message]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(history.len() + 1);
    if !system.is_empty() {
        messages.push(ChatMessage::text(ChatRole::System, system));
    }
    for m in history {
        if m.role == MessageRole::Assistant && !m.tool_steps.is_empty() {
            for step in &m.tool_steps {
                let calls: Vec<ToolCallRequest> = step
                    .calls
                    .iter()
                    .map(|c| ToolCallRequest { id: c.id.clone(), name: c.name.clone(), arguments: c.arguments.clone() })
                    .collect();
                messages.push(ChatMessage {
                    role: ChatRole::Assistant,
                    content: step.text.clone(),
                    tool_calls: calls,
                    tool_call_id: None,
                });
                messages.extend(step.calls.iter().map(|c| ChatMessage {
                    role: ChatRole::Tool,
                    content: c.result.clone(),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(c.id.clone()),
                }));
            }
            continue;
        }
        let role = match m.role {
            MessageRole::User => ChatRole::User,
            MessageRole::Assistant => ChatRole::Assistant,
            MessageRole::System => ChatRole::System,
            MessageRole::Tool => ChatRole::Tool,
        };
        messages.push(ChatMessage::text(role, m.content.clone()));
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::DynamicBlock;

    fn meta() -> UserMeta {
        UserMeta { name: Some("Ada".into()), email: None }
    }

    #[test]
    fn answers_with_tools_replay_their_steps_and_results() {
        use agentry_core::{Timestamp, ToolStep, ToolStepCall};
        let user = Message::new("thr", MessageRole::User, "time?".into(), None);
        let answer = Message {
            tool_steps: vec![
                ToolStep {
                    text: "Checking.".into(),
                    calls: vec![ToolStepCall {
                        id: "call_1".into(),
                        name: "current_time".into(),
                        arguments: "{}".into(),
                        result: "{\"now\":1}".into(),
                        is_error: false,
                    }],
                },
                ToolStep { text: "It is 1.".into(), calls: Vec::new() },
            ],
            created_at: Timestamp(1),
            ..Message::new("thr", MessageRole::Assistant, "Checking.\n\nIt is 1.".into(), Some("trn"))
        };
        let prompt = messages("sys".into(), &[user, answer]);
        let shape: Vec<_> = prompt.iter().map(|m| (m.role, m.content.as_str(), m.tool_calls.len())).collect();
        assert_eq!(
            shape,
            [
                (ChatRole::System, "sys", 0),
                (ChatRole::User, "time?", 0),
                (ChatRole::Assistant, "Checking.", 1),
                (ChatRole::Tool, "{\"now\":1}", 0),
                (ChatRole::Assistant, "It is 1.", 0),
            ]
        );
        assert_eq!(prompt[3].tool_call_id.as_deref(), Some("call_1"));
    }

    #[test]
    fn user_placeholders_are_filled_and_others_kept() {
        assert_eq!(render("Hi {{user.name}} <{{ user.email }}> {{other}}", &meta()), "Hi Ada <> {{other}}");
        assert_eq!(render("unclosed {{user.name", &meta()), "unclosed {{user.name");
    }

    #[test]
    fn dynamic_blocks_use_caller_content_or_defaults_in_order() {
        let mut agent = AgentSpec::new("a", "A", "scripted:echo", "You help {{user.name}}.");
        agent.dynamic_blocks = vec![
            DynamicBlock {
                key: "b".into(),
                name: "Second".into(),
                default_content: "default b".into(),
                description: None,
                order: 2,
            },
            DynamicBlock {
                key: "a".into(),
                name: "First".into(),
                default_content: String::new(),
                description: None,
                order: 1,
            },
            DynamicBlock {
                key: "c".into(),
                name: "Empty".into(),
                default_content: String::new(),
                description: None,
                order: 3,
            },
        ];
        let mut input = TurnInput { user_meta: meta(), ..Default::default() };
        input.dynamic_blocks.insert("a".into(), "page {{user.name}}".into());
        input.dynamic_blocks.insert("undeclared".into(), "ignored".into());
        assert_eq!(system_prompt(&agent, &input), "You help Ada.\n\n## First\npage Ada\n\n## Second\ndefault b");
    }
}
