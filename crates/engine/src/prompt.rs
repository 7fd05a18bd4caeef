//! Prompt assembly: the agent's system prompt with `{{user.name}}`/`{{user.email}}` filled in, its
//! declared dynamic blocks appended, then the thread's history.

use agentry_core::{AgentSpec, Message, MessageRole, TurnInput, UserMeta};
use agentry_llm::{ChatMessage, ChatRole};

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
pub fn messages(system: String, history: &[Message]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(history.len() + 1);
    if !system.is_empty() {
        messages.push(ChatMessage::text(ChatRole::System, system));
    }
    messages.extend(history.iter().map(|m| {
        let role = match m.role {
            MessageRole::User => ChatRole::User,
            MessageRole::Assistant => ChatRole::Assistant,
            MessageRole::System => ChatRole::System,
            MessageRole::Tool => ChatRole::Tool,
        };
        ChatMessage::text(role, m.content.clone())
    }));
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
