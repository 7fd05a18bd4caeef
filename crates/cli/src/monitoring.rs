//! `agentry turns` and `agentry trace THREAD`: what turns did, in the terminal.

use agentry_client::{TraceSpan, TurnQuery, TurnRecord};
use clap::Args;
use serde_json::Value;

use crate::OperatorArgs;

/// `agentry turns`
#[derive(Debug, Args)]
pub struct TurnsArgs {
    #[command(flatten)]
    connection: OperatorArgs,
    /// Only this agent's.
    #[arg(long)]
    agent: Option<String>,
    /// Only this thread's.
    #[arg(long)]
    thread: Option<String>,
    /// Only this user's.
    #[arg(long)]
    user: Option<String>,
    /// Only turns in this state (queued, running, waiting, completed, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 20)]
    limit: i64,
}

/// `agentry trace THREAD`
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    connection: OperatorArgs,
    /// The thread.
    thread_id: String,
}

/// Lists recent turns, one a line.
pub async fn turns(args: TurnsArgs) -> Result<(), String> {
    let query = TurnQuery {
        agent_id: args.agent,
        thread_id: args.thread,
        user_id: args.user,
        status: args.status,
        limit: Some(args.limit),
        ..TurnQuery::default()
    };
    let turns = args.connection.client()?.monitoring().turns(&query).await.map_err(|e| e.to_string())?;
    if turns.is_empty() {
        println!("no turns");
    }
    for turn in &turns {
        println!("{}", turn_line(turn));
    }
    Ok(())
}

fn turn_line(turn: &TurnRecord) -> String {
    let duration = turn.duration_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
    let error = turn.error.as_deref().map_or_else(String::new, |e| format!("  ({e})"));
    format!(
        "{}  {:<9}  {:<16} {:<14} {:>9}  {} steps, {} tools  {} → {} tok  {:.4} ¢  thread {}{error}",
        turn.created_at.to_rfc3339(),
        turn.status.as_str(),
        turn.agent_id,
        turn.user_id,
        duration,
        turn.steps,
        turn.tool_calls,
        turn.input_tokens,
        turn.output_tokens,
        turn.cost_cents,
        turn.thread_id,
    )
}

/// Prints a thread's spans as a tree.
pub async fn trace(args: TraceArgs) -> Result<(), String> {
    let trace =
        args.connection.client()?.monitoring().thread_trace(&args.thread_id).await.map_err(|e| e.to_string())?;
    let r = &trace.rollup;
    println!(
        "thread {}: {} messages, {} turns, {} tool calls, {} → {} tokens, {:.4} ¢",
        trace.thread_id,
        r.total_messages,
        r.total_turns,
        r.tool_call_count,
        r.total_input_tokens,
        r.total_output_tokens,
        r.total_cost_cents
    );
    if trace.span_tree.is_empty() {
        println!("no spans recorded (is [telemetry] store_spans off?)");
    }
    let mut out = String::new();
    for root in &trace.span_tree {
        render(root, "", true, true, &mut out);
    }
    print!("{out}");
    Ok(())
}

/// One span and its children, with tree lines.
fn render(span: &TraceSpan, prefix: &str, last: bool, root: bool, out: &mut String) {
    let (branch, next) = match (root, last) {
        (true, _) => ("", String::new()),
        (false, true) => ("└─ ", format!("{prefix}   ")),
        (false, false) => ("├─ ", format!("{prefix}│  ")),
    };
    out.push_str(&format!("{prefix}{branch}{}  {}\n", span.name, details(span)));
    let children = span.child_spans();
    for (i, child) in children.iter().enumerate() {
        render(child, &next, i + 1 == children.len(), false, out);
    }
}

/// Duration, tokens, cost and status of a span.
fn details(span: &TraceSpan) -> String {
    let attr = |key: &str| span.attributes.get(key);
    let number = |key: &str| attr(key).and_then(Value::as_i64);
    let mut parts = vec![format!("{:.1} ms", span.duration_ms)];
    if let (Some(input), Some(output)) = (number("gen_ai.usage.input_tokens"), number("gen_ai.usage.output_tokens")) {
        parts.push(format!("{input} → {output} tok"));
    }
    if let Some(cost) = number("agentry.cost_micro_cents") {
        parts.push(format!("{:.4} ¢", cost as f64 / 1e6));
    }
    if let Some(ttft) = number("agentry.time_to_first_token_ms") {
        parts.push(format!("ttft {ttft} ms"));
    }
    if let Some(wait) = number("agentry.approval.wait_ms") {
        parts.push(format!("waited {wait} ms for approval"));
    }
    if span.status != "ok" {
        parts.push(format!("{}: {}", span.status, span.error_message.as_deref().unwrap_or("")));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str, ms: f64, children: Vec<TraceSpan>) -> TraceSpan {
        let attributes = serde_json::json!({
            "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4, "agentry.cost_micro_cents": 1500,
        });
        TraceSpan {
            trace_id: "t".into(),
            span_id: name.into(),
            parent_span_id: None,
            name: name.into(),
            kind: "internal".into(),
            start_time_unix_nano: "0".into(),
            end_time_unix_nano: "0".into(),
            start_time: agentry_core::Timestamp(0),
            end_time: agentry_core::Timestamp(0),
            duration_ms: ms,
            status: "ok".into(),
            error_message: None,
            turn_id: "trn".into(),
            thread_id: "thr".into(),
            agent_id: "a".into(),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            children: Some(children),
        }
    }

    #[test]
    fn a_trace_prints_as_a_tree_with_durations_tokens_and_costs() {
        let tree = span("invoke_agent a", 10.0, vec![span("chat m", 4.0, vec![]), span("execute_tool t", 1.0, vec![])]);
        let mut out = String::new();
        render(&tree, "", true, true, &mut out);
        assert_eq!(
            out,
            "invoke_agent a  10.0 ms, 3 → 4 tok, 0.0015 ¢\n├─ chat m  4.0 ms, 3 → 4 tok, 0.0015 ¢\n└─ execute_tool t  1.0 ms, 3 → 4 tok, 0.0015 ¢\n"
        );
    }
}
